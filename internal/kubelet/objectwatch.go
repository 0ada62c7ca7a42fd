package kubelet

import (
	"context"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// objectWatch serves the ConfigMaps and Secrets that pods refer to, and
// the kubernetes Service, from watches of one object each, as upstream's
// watch-based configMap/secret managers do: starting a pod and the periodic
// volume resync cost no GET (a burst of pods in one namespace used to send
// one GET of kube-root-ca.crt each). A watch starts with the first pod that
// refers to its object and stops once the last such pod is gone (release);
// the kubernetes Service's is kept.
type objectWatch struct {
	client kubernetes.Interface
	// syncTimeout bounds the wait for a new watch's first list; past it the
	// lookup falls back to a GET.
	syncTimeout time.Duration

	mu      sync.Mutex
	entries map[objectKey]*watchEntry
}

type objectKey struct{ resource, namespace, name string }

type watchEntry struct {
	informer cache.SharedIndexInformer
	stop     chan struct{}
	// pods are the UIDs of the pods that refer to the object; none for a
	// kept watch.
	pods map[string]bool
	kept bool
}

func newObjectWatch(client kubernetes.Interface) *objectWatch {
	return &objectWatch{client: client, syncTimeout: 10 * time.Second, entries: map[objectKey]*watchEntry{}}
}

// get returns the object key names as the watch sees it, on behalf of the
// pod podUID ("" keeps the watch for good). A missing object is NotFound.
func (w *objectWatch) get(ctx context.Context, key objectKey, podUID string) (runtime.Object, error) {
	w.mu.Lock()
	e := w.entries[key]
	if e == nil {
		e = &watchEntry{informer: w.newInformer(key), stop: make(chan struct{}), pods: map[string]bool{}}
		w.entries[key] = e
		go e.informer.Run(e.stop)
	}
	if podUID == "" {
		e.kept = true
	} else {
		e.pods[podUID] = true
	}
	w.mu.Unlock()
	if !waitSynced(ctx, e.informer, w.syncTimeout) {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return w.getDirect(ctx, key) // the watch cannot list: ask directly
	}
	obj, ok, err := e.informer.GetStore().GetByKey(key.namespace + "/" + key.name)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, apierrors.NewNotFound(schema.GroupResource{Resource: key.resource}, key.name)
	}
	return obj.(runtime.Object), nil
}

// release drops a gone pod's references and stops the watches no pod needs.
func (w *objectWatch) release(podUID string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for k, e := range w.entries {
		delete(e.pods, podUID)
		if len(e.pods) == 0 && !e.kept {
			close(e.stop)
			delete(w.entries, k)
		}
	}
}

// stopAll stops every watch.
func (w *objectWatch) stopAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for k, e := range w.entries {
		close(e.stop)
		delete(w.entries, k)
	}
}

// waitSynced polls more often than cache.WaitForCacheSync (every 100 ms),
// since a pod's start waits on it.
func waitSynced(ctx context.Context, inf cache.SharedIndexInformer, timeout time.Duration) bool {
	if inf.HasSynced() {
		return true
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-deadline.C:
			return false
		case <-tick.C:
			if inf.HasSynced() {
				return true
			}
		}
	}
}

func (w *objectWatch) newInformer(key objectKey) cache.SharedIndexInformer {
	sel := fields.OneTermEqualSelector("metadata.name", key.name).String()
	core := w.client.CoreV1()
	var (
		list func(context.Context, metav1.ListOptions) (runtime.Object, error)
		wf   func(context.Context, metav1.ListOptions) (watch.Interface, error)
		obj  runtime.Object
	)
	switch key.resource {
	case "configmap":
		c := core.ConfigMaps(key.namespace)
		list = func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return c.List(ctx, o) }
		wf, obj = c.Watch, &corev1.ConfigMap{}
	case "secret":
		c := core.Secrets(key.namespace)
		list = func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return c.List(ctx, o) }
		wf, obj = c.Watch, &corev1.Secret{}
	default:
		c := core.Services(key.namespace)
		list = func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return c.List(ctx, o) }
		wf, obj = c.Watch, &corev1.Service{}
	}
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = sel
			return list(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = sel
			return wf(ctx, o)
		},
	}
	// The client says whether it streams initial events (fakes do not).
	return cache.NewSharedIndexInformer(cache.ToListWatcherWithWatchListSemantics(lw, w.client), obj, 0, cache.Indexers{})
}

func (w *objectWatch) getDirect(ctx context.Context, key objectKey) (runtime.Object, error) {
	core := w.client.CoreV1()
	switch key.resource {
	case "configmap":
		return core.ConfigMaps(key.namespace).Get(ctx, key.name, metav1.GetOptions{})
	case "secret":
		return core.Secrets(key.namespace).Get(ctx, key.name, metav1.GetOptions{})
	default:
		return core.Services(key.namespace).Get(ctx, key.name, metav1.GetOptions{})
	}
}
