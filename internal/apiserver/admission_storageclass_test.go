package apiserver

import (
	"testing"
	"time"

	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestDefaultStorageClass(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	sc := func(name string, def string, at time.Time) storagev1.StorageClass {
		c := storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(at)}}
		if def != "" {
			c.Annotations = map[string]string{def: "true"}
		}
		return c
	}
	const ga, beta = "storageclass.kubernetes.io/is-default-class", "storageclass.beta.kubernetes.io/is-default-class"
	for _, tc := range []struct {
		name    string
		classes []storagev1.StorageClass
		want    string
	}{
		{"none", nil, ""},
		{"no default", []storagev1.StorageClass{sc("a", "", t0)}, ""},
		{"one default", []storagev1.StorageClass{sc("a", "", t0), sc("b", ga, t0)}, "b"},
		{"beta annotation", []storagev1.StorageClass{sc("a", beta, t0)}, "a"},
		{"newest default wins", []storagev1.StorageClass{sc("old", ga, t0), sc("new", ga, t0.Add(time.Minute))}, "new"},
		{"same time: by name", []storagev1.StorageClass{sc("z", ga, t0), sc("m", ga, t0)}, "m"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := defaultStorageClass(tc.classes); got != tc.want {
				t.Fatalf("default class = %q, want %q", got, tc.want)
			}
		})
	}
}
