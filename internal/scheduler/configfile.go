package scheduler

import (
	"errors"
	"fmt"
	"os"
	"slices"

	"sigs.k8s.io/yaml"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
	"github.com/skiff-sh/skiff/internal/scheduler/plugins/imagelocality"
	"github.com/skiff-sh/skiff/internal/scheduler/plugins/interpodaffinity"
	"github.com/skiff-sh/skiff/internal/scheduler/plugins/nodeaffinity"
	"github.com/skiff-sh/skiff/internal/scheduler/plugins/nodename"
	"github.com/skiff-sh/skiff/internal/scheduler/plugins/nodeports"
	"github.com/skiff-sh/skiff/internal/scheduler/plugins/noderesources"
	"github.com/skiff-sh/skiff/internal/scheduler/plugins/nodeunschedulable"
	"github.com/skiff-sh/skiff/internal/scheduler/plugins/podtopologyspread"
	"github.com/skiff-sh/skiff/internal/scheduler/plugins/tainttoleration"
	"github.com/skiff-sh/skiff/internal/scheduler/plugins/volumebinding"
)

// The --config file: the part of upstream's KubeSchedulerConfiguration
// (kubescheduler.config.k8s.io/v1) skiff acts on — one profile's
// scheduler name, its filter, score and postFilter plugin sets (and
// multiPoint), and percentageOfNodesToScore. Fields upstream has and skiff
// ignores are accepted; unknown fields are errors.

// ConfigAPIVersion and ConfigKind identify the file.
const (
	ConfigAPIVersion = "kubescheduler.config.k8s.io/v1"
	ConfigKind       = "KubeSchedulerConfiguration"
)

// DefaultPreemptionName is the PostFilter plugin's name.
const DefaultPreemptionName = "DefaultPreemption"

// FileConfig is a KubeSchedulerConfiguration.
type FileConfig struct {
	APIVersion               string          `json:"apiVersion"`
	Kind                     string          `json:"kind"`
	PercentageOfNodesToScore *int32          `json:"percentageOfNodesToScore,omitempty"`
	Profiles                 []ProfileConfig `json:"profiles,omitempty"`

	// Accepted, not used.
	Parallelism               any `json:"parallelism,omitempty"`
	LeaderElection            any `json:"leaderElection,omitempty"`
	ClientConnection          any `json:"clientConnection,omitempty"`
	HealthzBindAddress        any `json:"healthzBindAddress,omitempty"`
	MetricsBindAddress        any `json:"metricsBindAddress,omitempty"`
	EnableProfiling           any `json:"enableProfiling,omitempty"`
	EnableContentionProfiling any `json:"enableContentionProfiling,omitempty"`
	PodInitialBackoffSeconds  any `json:"podInitialBackoffSeconds,omitempty"`
	PodMaxBackoffSeconds      any `json:"podMaxBackoffSeconds,omitempty"`
	DelayCacheUntilActive     any `json:"delayCacheUntilActive,omitempty"`
}

// ProfileConfig is one scheduling profile.
type ProfileConfig struct {
	SchedulerName            string         `json:"schedulerName,omitempty"`
	PercentageOfNodesToScore *int32         `json:"percentageOfNodesToScore,omitempty"`
	Plugins                  *PluginsConfig `json:"plugins,omitempty"`
	PluginConfig             any            `json:"pluginConfig,omitempty"` // accepted, not used
}

// PluginsConfig has a plugin set per extension point.
type PluginsConfig struct {
	MultiPoint PluginSet `json:"multiPoint,omitempty"`
	Filter     PluginSet `json:"filter,omitempty"`
	PostFilter PluginSet `json:"postFilter,omitempty"`
	Score      PluginSet `json:"score,omitempty"`
	// Extension points skiff does not make configurable: they must be
	// empty.
	QueueSort  PluginSet `json:"queueSort,omitempty"`
	PreEnqueue PluginSet `json:"preEnqueue,omitempty"`
	PreFilter  PluginSet `json:"preFilter,omitempty"`
	PreScore   PluginSet `json:"preScore,omitempty"`
	Reserve    PluginSet `json:"reserve,omitempty"`
	Permit     PluginSet `json:"permit,omitempty"`
	PreBind    PluginSet `json:"preBind,omitempty"`
	Bind       PluginSet `json:"bind,omitempty"`
	PostBind   PluginSet `json:"postBind,omitempty"`
}

// PluginSet enables and disables plugins at an extension point.
type PluginSet struct {
	Enabled  []PluginRef `json:"enabled,omitempty"`
	Disabled []PluginRef `json:"disabled,omitempty"`
}

// PluginRef names a plugin; Weight applies to score plugins.
type PluginRef struct {
	Name   string `json:"name"`
	Weight *int32 `json:"weight,omitempty"`
}

func (s PluginSet) empty() bool { return len(s.Enabled) == 0 && len(s.Disabled) == 0 }

// The plugins by name, as upstream's in-tree registry.
var (
	filterRegistry = map[string]func() framework.FilterPlugin{
		nodename.Name:          func() framework.FilterPlugin { return nodename.NodeName{} },
		nodeunschedulable.Name: func() framework.FilterPlugin { return nodeunschedulable.NodeUnschedulable{} },
		tainttoleration.Name:   func() framework.FilterPlugin { return tainttoleration.TaintToleration{} },
		nodeaffinity.Name:      func() framework.FilterPlugin { return nodeaffinity.NodeAffinity{} },
		nodeports.Name:         func() framework.FilterPlugin { return nodeports.NodePorts{} },
		noderesources.FitName:  func() framework.FilterPlugin { return noderesources.Fit{} },
		podtopologyspread.Name: func() framework.FilterPlugin { return podtopologyspread.New() },
		interpodaffinity.Name:  func() framework.FilterPlugin { return interpodaffinity.New() },
		volumebinding.Name:     func() framework.FilterPlugin { return volumebinding.VolumeBinding{} },
	}
	scoreRegistry = map[string]func() framework.ScorePlugin{
		tainttoleration.Name:       func() framework.ScorePlugin { return tainttoleration.TaintToleration{} },
		nodeaffinity.Name:          func() framework.ScorePlugin { return nodeaffinity.NodeAffinity{} },
		noderesources.FitName:      func() framework.ScorePlugin { return noderesources.Fit{} },
		noderesources.BalancedName: func() framework.ScorePlugin { return noderesources.Balanced{} },
		imagelocality.Name:         func() framework.ScorePlugin { return imagelocality.ImageLocality{} },
		podtopologyspread.Name:     func() framework.ScorePlugin { return podtopologyspread.New() },
		interpodaffinity.Name:      func() framework.ScorePlugin { return interpodaffinity.New() },
	}
)

func knownPlugin(name string) bool {
	_, f := filterRegistry[name]
	_, s := scoreRegistry[name]
	return f || s || name == DefaultPreemptionName
}

// LoadConfigFile reads and validates a KubeSchedulerConfiguration file.
func LoadConfigFile(path string) (*FileConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("scheduler config: %w", err)
	}
	fc, err := ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("scheduler config %s: %w", path, err)
	}
	return fc, nil
}

// ParseConfig decodes (strictly) and validates a configuration.
func ParseConfig(data []byte) (*FileConfig, error) {
	fc := &FileConfig{}
	if err := yaml.UnmarshalStrict(data, fc); err != nil {
		return nil, err
	}
	if err := fc.Validate(); err != nil {
		return nil, err
	}
	return fc, nil
}

// Validate rejects what skiff cannot honour, naming the field.
func (fc *FileConfig) Validate() error {
	var errs []error
	if fc.APIVersion != ConfigAPIVersion || fc.Kind != ConfigKind {
		errs = append(errs, fmt.Errorf("apiVersion/kind %q/%q, want %q/%q", fc.APIVersion, fc.Kind, ConfigAPIVersion, ConfigKind))
	}
	checkPct := func(field string, p *int32) {
		if p != nil && (*p < 0 || *p > 100) {
			errs = append(errs, fmt.Errorf("%s: %d not in 0..100", field, *p))
		}
	}
	checkPct("percentageOfNodesToScore", fc.PercentageOfNodesToScore)
	if len(fc.Profiles) > 1 {
		errs = append(errs, fmt.Errorf("profiles: %d given, skiff runs one", len(fc.Profiles)))
	}
	for i, p := range fc.Profiles {
		field := fmt.Sprintf("profiles[%d]", i)
		checkPct(field+".percentageOfNodesToScore", p.PercentageOfNodesToScore)
		if p.Plugins == nil {
			continue
		}
		pl := p.Plugins
		for _, x := range []struct {
			name  string
			set   PluginSet
			known func(string) bool
		}{
			{"multiPoint", pl.MultiPoint, knownPlugin},
			{"filter", pl.Filter, func(n string) bool { _, ok := filterRegistry[n]; return ok }},
			{"score", pl.Score, func(n string) bool { _, ok := scoreRegistry[n]; return ok }},
			{"postFilter", pl.PostFilter, func(n string) bool { return n == DefaultPreemptionName }},
		} {
			errs = append(errs, validateSet(field+".plugins."+x.name, x.set, x.known)...)
		}
		for name, set := range map[string]PluginSet{"queueSort": pl.QueueSort, "preEnqueue": pl.PreEnqueue, "preFilter": pl.PreFilter,
			"preScore": pl.PreScore, "reserve": pl.Reserve, "permit": pl.Permit, "preBind": pl.PreBind, "bind": pl.Bind, "postBind": pl.PostBind} {
			if !set.empty() {
				errs = append(errs, fmt.Errorf("%s.plugins.%s: not configurable in skiff (filter, score, postFilter and multiPoint are)", field, name))
			}
		}
	}
	return errors.Join(errs...)
}

func validateSet(field string, set PluginSet, known func(string) bool) []error {
	var errs []error
	for i, p := range set.Enabled {
		if !known(p.Name) {
			errs = append(errs, fmt.Errorf("%s.enabled[%d]: unknown plugin %q", field, i, p.Name))
		}
		if p.Weight != nil && (*p.Weight < 1 || *p.Weight > 100) {
			errs = append(errs, fmt.Errorf("%s.enabled[%d]: plugin %s weight %d not in 1..100", field, i, p.Name, *p.Weight))
		}
	}
	for i, p := range set.Disabled {
		if p.Name != "*" && !known(p.Name) {
			errs = append(errs, fmt.Errorf("%s.disabled[%d]: unknown plugin %q", field, i, p.Name))
		}
	}
	return errs
}

// Apply sets cfg's scheduler name, plugins, preemption and node share
// from the file (a validated one). Upstream's merge rules: the default
// plugins minus the disabled ones ("*": all), then the enabled ones — a
// default plugin enabled again keeps its place and takes the new weight.
// multiPoint applies to every extension point a plugin implements, before
// the extension points' own sets.
func (fc *FileConfig) Apply(cfg *Config) {
	cfg.PercentageOfNodesToScore = derefPct(fc.PercentageOfNodesToScore)
	if len(fc.Profiles) == 0 {
		return
	}
	p := fc.Profiles[0]
	if p.SchedulerName != "" {
		cfg.SchedulerName = p.SchedulerName
	}
	if p.PercentageOfNodesToScore != nil {
		cfg.PercentageOfNodesToScore = *p.PercentageOfNodesToScore
	}
	if p.Plugins == nil {
		return
	}
	def := DefaultPlugins()
	filters := make([]weighted, 0, len(def.Filters))
	for _, f := range def.Filters {
		filters = append(filters, weighted{name: f.Name()})
	}
	scores := make([]weighted, 0, len(def.Scorers))
	defaultWeight := map[string]int64{}
	for _, s := range def.Scorers {
		scores = append(scores, weighted{name: s.Name(), weight: s.Weight})
		defaultWeight[s.Name()] = s.Weight
	}
	preemption := []weighted{{name: DefaultPreemptionName}}
	pl := p.Plugins
	mp := pl.MultiPoint
	only := func(reg func(string) bool) PluginSet {
		out := PluginSet{Disabled: mp.Disabled}
		for _, e := range mp.Enabled {
			if reg(e.Name) {
				out.Enabled = append(out.Enabled, e)
			}
		}
		return out
	}
	isFilter := func(n string) bool { _, ok := filterRegistry[n]; return ok }
	isScore := func(n string) bool { _, ok := scoreRegistry[n]; return ok }
	isPreemption := func(n string) bool { return n == DefaultPreemptionName }
	filters = merge(merge(filters, only(isFilter), defaultWeight), pl.Filter, defaultWeight)
	scores = merge(merge(scores, only(isScore), defaultWeight), pl.Score, defaultWeight)
	preemption = merge(merge(preemption, only(isPreemption), defaultWeight), pl.PostFilter, defaultWeight)

	prof := &framework.Profile{}
	for _, f := range filters {
		prof.Filters = append(prof.Filters, filterRegistry[f.name]())
	}
	for _, s := range scores {
		prof.Scorers = append(prof.Scorers, framework.WeightedScorer{ScorePlugin: scoreRegistry[s.name](), Weight: s.weight})
	}
	cfg.Plugins = prof
	cfg.DisablePreemption = len(preemption) == 0
}

type weighted struct {
	name   string
	weight int64
}

func merge(list []weighted, set PluginSet, defaultWeight map[string]int64) []weighted {
	for _, d := range set.Disabled {
		if d.Name == "*" {
			list = nil
			break
		}
		list = slices.DeleteFunc(list, func(w weighted) bool { return w.name == d.Name })
	}
	for _, e := range set.Enabled {
		w := defaultWeight[e.Name]
		if e.Weight != nil {
			w = int64(*e.Weight)
		}
		if w == 0 {
			w = 1
		}
		if i := slices.IndexFunc(list, func(x weighted) bool { return x.name == e.Name }); i >= 0 {
			list[i].weight = w
			continue
		}
		list = append(list, weighted{name: e.Name, weight: w})
	}
	return list
}

func derefPct(p *int32) int32 {
	if p == nil {
		return 0
	}
	return *p
}
