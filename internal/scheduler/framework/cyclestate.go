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
