package framework

// CycleState carries what plugins computed in one scheduling cycle from
// PreFilter/PreScore to Filter/Score. One cycle runs on one goroutine, so
// it has no lock.
type CycleState struct {
	data       map[string]any
	skipFilter map[string]bool
	skipScore  map[string]bool
}

// NewCycleState returns an empty state for a new cycle.
func NewCycleState() *CycleState { return &CycleState{} }

// Write stores v under key (by convention "PreFilter"+plugin name).
func (c *CycleState) Write(key string, v any) {
	if c.data == nil {
		c.data = map[string]any{}
	}
	c.data[key] = v
}

// Read returns what was stored under key.
func (c *CycleState) Read(key string) (any, bool) {
	v, ok := c.data[key]
	return v, ok
}

// SkipFilter records that plugin name has nothing to filter this cycle.
func (c *CycleState) SkipFilter(name string) {
	if c.skipFilter == nil {
		c.skipFilter = map[string]bool{}
	}
	c.skipFilter[name] = true
}

// FilterSkipped reports whether plugin name skips its Filter this cycle.
func (c *CycleState) FilterSkipped(name string) bool { return c.skipFilter[name] }

// SkipScore records that plugin name has nothing to score this cycle.
func (c *CycleState) SkipScore(name string) {
	if c.skipScore == nil {
		c.skipScore = map[string]bool{}
	}
	c.skipScore[name] = true
}

// ScoreSkipped reports whether plugin name skips its Score this cycle.
func (c *CycleState) ScoreSkipped(name string) bool { return c.skipScore[name] }

// StateCloner is cycle state a plugin changes after PreFilter (through
// its PreFilterExtensions); Clone must return a copy whose changes do not
// show in the original. State without Clone is shared by clones, so it
// must not change after it is written.
type StateCloner interface {
	Clone() any
}

// Clone copies the state for a what-if (preemption's dry runs, nominated
// pods added to a node), deep-copying the values that are StateCloners.
func (c *CycleState) Clone() *CycleState {
	out := &CycleState{skipFilter: c.skipFilter, skipScore: c.skipScore}
	if c.data != nil {
		out.data = make(map[string]any, len(c.data))
		for k, v := range c.data {
			if cl, ok := v.(StateCloner); ok {
				v = cl.Clone()
			}
			out.data[k] = v
		}
	}
	return out
}
