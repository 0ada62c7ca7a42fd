package apiserver

import (
	"net/http"
	"testing"
	"unsafe"
)

func TestNeedsDeepStack(t *testing.T) {
	for method, want := range map[string]bool{
		http.MethodGet: false, http.MethodHead: false, http.MethodOptions: false,
		http.MethodPost: true, http.MethodPut: true, http.MethodPatch: true, http.MethodDelete: true,
	} {
		if got := needsDeepStack(&http.Request{Method: method}); got != want {
			t.Errorf("needsDeepStack(%s) = %v, want %v", method, got, want)
		}
	}
}

// deep uses about n KB of stack in 1 KB frames.
//
//go:noinline
func deep(n int) byte {
	var b [1 << 10]byte
	b[n%len(b)] = byte(n)
	if n > 0 {
		return deep(n-1) + b[(n*3)%len(b)]
	}
	return b[0]
}

// stackMoves reports whether a new goroutine's stack is copied elsewhere
// while it goes ~20 KB deep: a copy moves its local variables, so the
// address of one, kept as a plain number, no longer matches.
func stackMoves(pregrow bool) bool {
	moved := make(chan bool)
	go func() {
		if pregrow {
			growStack(1)
		}
		var local byte
		before := uintptr(unsafe.Pointer(&local))
		deep(20)
		moved <- uintptr(unsafe.Pointer(&local)) != before
	}()
	return <-moved
}

func TestGrowStackAvoidsCopiesWhileDeep(t *testing.T) {
	if !stackMoves(false) {
		t.Skip("goroutines start with stacks large enough already; nothing to check")
	}
	if stackMoves(true) {
		t.Error("the stack was copied while deep after growStack")
	}
}
