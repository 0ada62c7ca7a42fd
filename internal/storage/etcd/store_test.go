package etcd

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff-sh/skiff/internal/storage"
	"github.com/skiff-sh/skiff/internal/storage/storagetest"
)

var shared *Embedded

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "skiff-etcd-test")
	if err != nil {
		panic(err)
	}
	shared, err = StartEmbedded(context.Background(), EmbeddedConfig{DataDir: dir})
	if err != nil {
		panic(err)
	}
	code := m.Run()
	shared.Close()
	os.RemoveAll(dir)
	os.Exit(code)
}

var prefixes atomic.Int64

func newPodStore(t *testing.T) storage.Interface {
	t.Helper()
	s, err := New(Config{
		Client:      shared.Client(),
		Codec:       DefaultCodec(corev1.SchemeGroupVersion),
		NewFunc:     func() runtime.Object { return &corev1.Pod{} },
		NewListFunc: func() runtime.Object { return &corev1.PodList{} },
		Prefix:      fmt.Sprintf("/test-%d", prefixes.Add(1)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storagetest.RunTests(t, storagetest.Factory{
		New: newPodStore,
		Compact: func(t *testing.T, rev int64) {
			if err := Compact(context.Background(), shared.Client(), rev); err != nil {
				t.Fatal(err)
			}
		},
	})
}

func TestEmbeddedRestartKeepsData(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	e, err := StartEmbedded(ctx, EmbeddedConfig{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	other, err := StartEmbedded(ctx, EmbeddedConfig{DataDir: t.TempDir()})
	if err != nil {
		t.Fatalf("a second instance beside the first: %v", err)
	}
	defer other.Close()
	if _, err := e.Client().Put(ctx, "/k", "v"); err != nil {
		t.Fatal(err)
	}
	if resp, err := other.Client().Get(ctx, "/k"); err != nil || len(resp.Kvs) != 0 {
		t.Fatalf("instances share data: %v %v", resp, err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e, err = StartEmbedded(ctx, EmbeddedConfig{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	resp, err := e.Client().Get(ctx, "/k")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v" {
		t.Fatalf("after restart: %v %v", resp, err)
	}
}

func TestStoredAsProtobufWithoutResourceVersion(t *testing.T) {
	s := newPodStore(t).(*store)
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"}}
	if err := s.Create(context.Background(), "/pods/ns/p", p, &corev1.Pod{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := shared.Client().Get(ctx, s.prefix+"/pods/ns/p")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatal(err)
	}
	raw := resp.Kvs[0].Value
	if len(raw) < 4 || string(raw[:4]) != "k8s\x00" {
		t.Fatalf("stored bytes do not start with the protobuf magic: %q", raw[:min(len(raw), 8)])
	}
}
