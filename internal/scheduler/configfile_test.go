package scheduler

import (
	"strings"
	"testing"
)

const header = "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\n"

func TestParseConfig(t *testing.T) {
	for _, tc := range []struct {
		name    string
		yaml    string
		wantErr string // substring; "" for valid
		check   func(t *testing.T, cfg Config)
	}{{
		name: "defaults when no profile",
		yaml: header,
		check: func(t *testing.T, cfg Config) {
			if cfg.Plugins != nil || cfg.SchedulerName != "" || cfg.DisablePreemption || cfg.PercentageOfNodesToScore != 0 {
				t.Errorf("changed %+v", cfg)
			}
		},
	}, {
		name: "scheduler name, a disabled score plugin, a new weight, node share",
		yaml: header + `percentageOfNodesToScore: 30
profiles:
- schedulerName: custom
  percentageOfNodesToScore: 40
  plugins:
    score:
      disabled: [{name: TaintToleration}]
      enabled: [{name: NodeResourcesFit, weight: 7}]
`,
		check: func(t *testing.T, cfg Config) {
			if cfg.SchedulerName != "custom" || cfg.PercentageOfNodesToScore != 40 {
				t.Errorf("name %q share %d", cfg.SchedulerName, cfg.PercentageOfNodesToScore)
			}
			var got []string
			for _, s := range cfg.Plugins.Scorers {
				got = append(got, s.Name())
				if s.Name() == "NodeResourcesFit" && s.Weight != 7 {
					t.Errorf("NodeResourcesFit weight %d", s.Weight)
				}
			}
			if strings.Join(got, ",") != "NodeAffinity,NodeResourcesFit,NodeResourcesBalancedAllocation,ImageLocality,PodTopologySpread,InterPodAffinity" {
				t.Errorf("scorers %v", got)
			}
			if len(cfg.Plugins.Filters) != len(DefaultPlugins().Filters) || cfg.DisablePreemption {
				t.Errorf("filters %d, preemption disabled %v", len(cfg.Plugins.Filters), cfg.DisablePreemption)
			}
		},
	}, {
		name: "all scores off but one, a filter off, preemption off",
		yaml: header + `profiles:
- plugins:
    score: {disabled: [{name: "*"}], enabled: [{name: ImageLocality}]}
    filter: {disabled: [{name: NodePorts}]}
    postFilter: {disabled: [{name: DefaultPreemption}]}
`,
		check: func(t *testing.T, cfg Config) {
			if len(cfg.Plugins.Scorers) != 1 || cfg.Plugins.Scorers[0].Name() != "ImageLocality" || cfg.Plugins.Scorers[0].Weight != 1 {
				t.Errorf("scorers %+v", cfg.Plugins.Scorers)
			}
			for _, f := range cfg.Plugins.Filters {
				if f.Name() == "NodePorts" {
					t.Error("NodePorts still filters")
				}
			}
			if !cfg.DisablePreemption {
				t.Error("preemption still on")
			}
		},
	}, {
		name: "multiPoint disables everywhere",
		yaml: header + "profiles:\n- plugins:\n    multiPoint: {disabled: [{name: InterPodAffinity}]}\n",
		check: func(t *testing.T, cfg Config) {
			for _, f := range cfg.Plugins.Filters {
				if f.Name() == "InterPodAffinity" {
					t.Error("still filters")
				}
			}
			for _, s := range cfg.Plugins.Scorers {
				if s.Name() == "InterPodAffinity" {
					t.Error("still scores")
				}
			}
		},
	},
		{name: "unknown plugin", yaml: header + "profiles:\n- plugins:\n    score: {enabled: [{name: NoSuchPlugin}]}\n", wantErr: `unknown plugin "NoSuchPlugin"`},
		{name: "filter-only plugin as a scorer", yaml: header + "profiles:\n- plugins:\n    score: {enabled: [{name: NodePorts}]}\n", wantErr: `unknown plugin "NodePorts"`},
		{name: "weight too big", yaml: header + "profiles:\n- plugins:\n    score: {enabled: [{name: ImageLocality, weight: 101}]}\n", wantErr: "weight 101 not in 1..100"},
		{name: "weight zero", yaml: header + "profiles:\n- plugins:\n    score: {enabled: [{name: ImageLocality, weight: 0}]}\n", wantErr: "weight 0 not in 1..100"},
		{name: "percentage", yaml: header + "percentageOfNodesToScore: 101\n", wantErr: "percentageOfNodesToScore: 101 not in 0..100"},
		{name: "profile percentage", yaml: header + "profiles:\n- percentageOfNodesToScore: -1\n", wantErr: "profiles[0].percentageOfNodesToScore"},
		{name: "wrong kind", yaml: "apiVersion: v1\nkind: ConfigMap\n", wantErr: "apiVersion/kind"},
		{name: "unknown field", yaml: header + "profiles:\n- schedulerNmae: x\n", wantErr: "schedulerNmae"},
		{name: "two profiles", yaml: header + "profiles:\n- schedulerName: a\n- schedulerName: b\n", wantErr: "skiff runs one"},
		{name: "unconfigurable extension point", yaml: header + "profiles:\n- plugins:\n    bind: {enabled: [{name: DefaultBinder}]}\n", wantErr: "plugins.bind: not configurable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fc, err := ParseConfig([]byte(tc.yaml))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var cfg Config
			fc.Apply(&cfg)
			tc.check(t, cfg)
		})
	}
}
