package fieldmanager

import (
	"crypto/sha256"
	"sync"
)

// shapeMap is the store the create and update caches share: entries by
// the SHA-256 of their key, started over when the entries' bytes would
// exceed maxCreateCacheBytes. The first entry of a key stays.
type shapeMap[V any] struct {
	mu      sync.Mutex
	entries map[[sha256.Size]byte]V
	bytes   int
}

func (s *shapeMap[V]) get(sum [sha256.Size]byte) (V, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.entries[sum]
	return v, ok
}

// put stores v, which takes size bytes, unless sum has an entry.
func (s *shapeMap[V]) put(sum [sha256.Size]byte, v V, size int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.entries == nil || s.bytes+size > maxCreateCacheBytes {
		s.entries, s.bytes = map[[sha256.Size]byte]V{}, 0
	}
	if _, ok := s.entries[sum]; !ok {
		s.entries[sum] = v
		s.bytes += size
	}
}
