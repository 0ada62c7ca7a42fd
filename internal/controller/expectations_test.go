package controller

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

func TestExpectations(t *testing.T) {
	now := time.Unix(1000, 0)
	e := NewExpectations()
	e.now = func() time.Time { return now }
	if !e.Satisfied("a") {
		t.Fatal("no record must be satisfied")
	}
	e.ExpectCreations("a", 2)
	e.ExpectDeletions("a", []types.UID{"u1"})
	e.CreationObserved("a")
	if e.Satisfied("a") {
		t.Fatal("one create and one delete outstanding")
	}
	e.CreationObserved("a")
	e.DeletionObserved("a", "other")
	if e.Satisfied("a") {
		t.Fatal("delete of u1 outstanding")
	}
	e.DeletionObserved("a", "u1")
	if !e.Satisfied("a") {
		t.Fatal("all observed")
	}
	e.ExpectCreations("b", 1)
	now = now.Add(ExpectationsTimeout + time.Second)
	if !e.Satisfied("b") {
		t.Fatal("expired record must be satisfied")
	}
}
