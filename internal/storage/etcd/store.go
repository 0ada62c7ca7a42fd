package etcd

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"go.etcd.io/etcd/api/v3/mvccpb"
	rpctypes "go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-sh/skiff/internal/api/scheme"
	"github.com/skiff-sh/skiff/internal/storage"
)

// Config is one resource's store.
type Config struct {
	Client      *clientv3.Client
	Codec       runtime.Codec
	NewFunc     func() runtime.Object
	NewListFunc func() runtime.Object
	// Prefix is prepended to every key, e.g. "/registry".
	Prefix   string
	Resource schema.GroupResource
}

// Validate rejects an incomplete config.
func (c *Config) Validate() error {
	switch {
	case c.Client == nil:
		return errors.New("etcd store: no client")
	case c.Codec == nil:
		return errors.New("etcd store: no codec")
	case c.NewFunc == nil || c.NewListFunc == nil:
		return errors.New("etcd store: NewFunc and NewListFunc are required")
	}
	return nil
}

type store struct {
	client *clientv3.Client
	codec  runtime.Codec
	newFn  func() runtime.Object
	newLst func() runtime.Object
	prefix string
	gr     schema.GroupResource
}

var _ storage.Interface = (*store)(nil)

// New returns the etcd store for cfg.
func New(cfg Config) (storage.Interface, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &store{client: cfg.Client, codec: cfg.Codec, newFn: cfg.NewFunc, newLst: cfg.NewListFunc,
		prefix: strings.TrimSuffix(cfg.Prefix, "/"), gr: cfg.Resource}, nil
}

// maxTooLargeWait is how long a read at a future revision waits for the
// store to catch up before failing, as upstream does.
const maxTooLargeWait = 3 * time.Second

func (s *store) full(key string) string { return s.prefix + key }

// encode serialises obj without its resourceVersion (the revision is the
// source of truth, never the stored bytes).
func (s *store) encode(obj runtime.Object) ([]byte, error) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, err
	}
	rv := m.GetResourceVersion()
	m.SetResourceVersion("")
	defer m.SetResourceVersion(rv)
	data, err := encode(s.codec, obj)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", s.gr, err)
	}
	return data, nil
}

func (s *store) decode(data []byte, into runtime.Object, rev int64) error {
	if _, _, err := s.codec.Decode(data, nil, into); err != nil {
		return fmt.Errorf("decode %s: %w", s.gr, err)
	}
	return setRV(into, rev)
}

// bytesString views data, an encoding nobody changes afterwards, as the
// string clientv3.OpPut takes, which copies it again anyway: one copy of
// every stored object fewer per write.
func bytesString(data []byte) string {
	return unsafe.String(unsafe.SliceData(data), len(data))
}

func setRV(obj runtime.Object, rev int64) error {
	m, err := meta.Accessor(obj)
	if err != nil {
		return err
	}
	m.SetResourceVersion(strconv.FormatInt(rev, 10))
	return nil
}

func parseRV(rv string) (int64, error) {
	if rv == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(rv, 10, 64)
	if err != nil || n < 0 {
		return 0, &storage.KeyError{Err: storage.ErrInvalidResourceVersion, Msg: rv}
	}
	return n, nil
}

func (s *store) Create(ctx context.Context, key string, obj, out runtime.Object) error {
	if m, err := meta.Accessor(obj); err == nil && m.GetResourceVersion() != "" {
		return errors.New("resourceVersion should not be set on objects to be created")
	}
	data, err := s.encode(obj)
	if err != nil {
		return err
	}
	k := s.full(key)
	resp, err := s.client.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, bytesString(data))).Commit()
	if err != nil {
		return fmt.Errorf("create %s: %w", key, err)
	}
	if !resp.Succeeded {
		return storage.NewExists(key)
	}
	switch {
	case out == nil:
		return nil
	case out == obj:
		return setWritten(out, resp.Header.Revision)
	}
	return s.decode(data, out, resp.Header.Revision)
}

// setWritten makes obj, the object just encoded and written at rev, what a
// decode of the written bytes would give back (type meta, resourceVersion),
// up to what the encoding drops (sub-second times, nil versus empty), which
// a response's encoding drops again: one decode fewer per write.
func setWritten(obj runtime.Object, rev int64) error {
	if kinds, _, err := scheme.Scheme.ObjectKinds(obj); err == nil && len(kinds) > 0 {
		obj.GetObjectKind().SetGroupVersionKind(kinds[0])
	}
	return setRV(obj, rev)
}

// moveInto copies next's top-level struct into out when both are pointers
// to the same struct type: out then shares what next points to, which only
// the store held (tryUpdate's result).
func moveInto(out, next runtime.Object) bool {
	if out == next {
		return true
	}
	ov, nv := reflect.ValueOf(out), reflect.ValueOf(next)
	if ov.Kind() != reflect.Pointer || ov.Type() != nv.Type() || ov.IsNil() || nv.IsNil() || ov.Elem().Kind() != reflect.Struct {
		return false
	}
	ov.Elem().Set(nv.Elem())
	return true
}

func (s *store) Get(ctx context.Context, key string, opts storage.GetOptions, out runtime.Object) error {
	want, err := parseRV(opts.ResourceVersion)
	if err != nil {
		return err
	}
	resp, err := s.client.Get(ctx, s.full(key))
	if err != nil {
		return fmt.Errorf("get %s: %w", key, err)
	}
	if want > resp.Header.Revision {
		if err := s.waitForRevision(ctx, key, want); err != nil {
			return err
		}
		if resp, err = s.client.Get(ctx, s.full(key)); err != nil {
			return fmt.Errorf("get %s: %w", key, err)
		}
	}
	if len(resp.Kvs) == 0 {
		if opts.IgnoreNotFound {
			return setRV(out, 0)
		}
		return storage.NewNotFound(key)
	}
	return s.decode(resp.Kvs[0].Value, out, resp.Kvs[0].ModRevision)
}

// waitForRevision waits briefly for the store to reach rev.
func (s *store) waitForRevision(ctx context.Context, key string, rev int64) error {
	deadline := time.Now().Add(maxTooLargeWait)
	for {
		cur, err := s.CurrentRevision(ctx)
		if err != nil {
			return err
		}
		if cur >= rev {
			return nil
		}
		if time.Now().After(deadline) {
			return &storage.KeyError{Err: storage.ErrTooLargeResourceVersion, Key: key, ResourceVersion: cur,
				Msg: fmt.Sprintf("requested %d, current %d", rev, cur)}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// continueToken is upstream's continue format.
type continueToken struct {
	APIVersion      string `json:"v"`
	ResourceVersion int64  `json:"rv"`
	StartKey        string `json:"start"`
}

func encodeContinue(key, keyPrefix string, rev int64) (string, error) {
	data, err := json.Marshal(continueToken{APIVersion: "meta.k8s.io/v1", ResourceVersion: rev, StartKey: strings.TrimPrefix(key, keyPrefix)})
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(data), nil
}

func decodeContinue(tok, keyPrefix string) (string, int64, error) {
	data, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return "", 0, &storage.KeyError{Err: storage.ErrInvalidContinue, Msg: "continue key is not valid: " + err.Error()}
	}
	var c continueToken
	if err := json.Unmarshal(data, &c); err != nil {
		return "", 0, &storage.KeyError{Err: storage.ErrInvalidContinue, Msg: "continue key is not valid: " + err.Error()}
	}
	if c.APIVersion != "meta.k8s.io/v1" {
		return "", 0, &storage.KeyError{Err: storage.ErrInvalidContinue, Msg: "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)"}
	}
	if c.ResourceVersion == 0 {
		return "", 0, &storage.KeyError{Err: storage.ErrInvalidContinue, Msg: "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)"}
	}
	if strings.Contains(c.StartKey, "..") || strings.HasPrefix(c.StartKey, "/") {
		return "", 0, &storage.KeyError{Err: storage.ErrInvalidContinue, Msg: "continue key is not valid: path traversal"}
	}
	return keyPrefix + c.StartKey, c.ResourceVersion, nil
}

func (s *store) GetList(ctx context.Context, prefix string, opts storage.ListOptions, listObj runtime.Object) error {
	if _, err := meta.GetItemsPtr(listObj); err != nil {
		return err
	}
	keyPrefix := s.full(prefix)
	if opts.Recursive && !strings.HasSuffix(keyPrefix, "/") {
		keyPrefix += "/"
	}
	reqRV, err := parseRV(opts.ResourceVersion)
	if err != nil {
		return err
	}
	start, end := keyPrefix, clientv3.GetPrefixRangeEnd(keyPrefix)
	if !opts.Recursive {
		end = ""
	}
	var withRev int64
	switch {
	case opts.Predicate.Continue != "":
		var rev int64
		start, rev, err = decodeContinue(opts.Predicate.Continue, keyPrefix)
		if err != nil {
			return err
		}
		withRev = rev
	case opts.ResourceVersionMatch == "Exact" && reqRV > 0:
		withRev = reqRV
	case reqRV > 0:
		cur, err := s.CurrentRevision(ctx)
		if err != nil {
			return err
		}
		if reqRV > cur {
			if err := s.waitForRevision(ctx, prefix, reqRV); err != nil {
				return err
			}
		}
	}
	limit := opts.Predicate.Limit
	filter := !opts.Predicate.Empty()
	var (
		items     []runtime.Object
		lastKey   string
		more      bool
		remaining int64
	)
	var batch int64
	if limit > 0 {
		batch = limit + 1
		if filter && batch < 500 {
			batch = 500 // most keys may not match: fetch more per round trip
		}
	}
page:
	for {
		ops := []clientv3.OpOption{}
		if end != "" {
			ops = append(ops, clientv3.WithRange(end))
		}
		if batch > 0 {
			ops = append(ops, clientv3.WithLimit(batch))
		}
		if withRev > 0 {
			ops = append(ops, clientv3.WithRev(withRev))
		}
		resp, err := s.client.Get(ctx, start, ops...)
		if err != nil {
			if errors.Is(err, rpctypes.ErrCompacted) {
				cur, _ := s.CurrentRevision(ctx)
				return storage.NewExpired(prefix, cur)
			}
			return fmt.Errorf("list %s: %w", prefix, err)
		}
		if withRev == 0 {
			withRev = resp.Header.Revision
		}
		for i, kv := range resp.Kvs {
			if limit > 0 && int64(len(items)) >= limit {
				more = true
				if !filter {
					remaining = resp.Count - int64(i)
				}
				break page
			}
			obj := s.newFn()
			if err := s.decode(kv.Value, obj, kv.ModRevision); err != nil {
				return err
			}
			lastKey = string(kv.Key)
			if filter {
				ok, err := matches(opts.Predicate, obj)
				if err != nil {
					return err
				}
				if !ok {
					continue
				}
			}
			items = append(items, obj)
		}
		if !resp.More || len(resp.Kvs) == 0 {
			break
		}
		start = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
	if err := meta.SetList(listObj, items); err != nil {
		return err
	}
	lm, err := meta.ListAccessor(listObj)
	if err != nil {
		return err
	}
	lm.SetResourceVersion(strconv.FormatInt(withRev, 10))
	lm.SetContinue("")
	lm.SetRemainingItemCount(nil)
	if more {
		tok, err := encodeContinue(lastKey+"\x00", keyPrefix, withRev)
		if err != nil {
			return err
		}
		lm.SetContinue(tok)
		if remaining > 0 {
			lm.SetRemainingItemCount(&remaining)
		}
	}
	return nil
}

// matches applies a predicate to one object.
func matches(p storage.SelectionPredicate, obj runtime.Object) (bool, error) {
	if p.Empty() {
		return true, nil
	}
	attrs := p.GetAttrs
	if attrs == nil {
		attrs = defaultAttrs
	}
	l, f, err := attrs(obj)
	if err != nil {
		return false, err
	}
	if p.Label != nil && !p.Label.Matches(l) {
		return false, nil
	}
	if p.Field != nil && !p.Field.Matches(f) {
		return false, nil
	}
	return true, nil
}

func (s *store) GuaranteedUpdate(ctx context.Context, key string, out runtime.Object, ignoreNotFound bool,
	pre *storage.Preconditions, tryUpdate storage.UpdateFunc) error {
	return s.GuaranteedUpdateFrom(ctx, key, out, ignoreNotFound, pre, tryUpdate, nil)
}

// GuaranteedUpdateFrom is GuaranteedUpdate starting from suggestion, when
// not nil: a copy of the object at key that the caller (the watch cache)
// believes current, with its resourceVersion, as upstream's store takes
// its cachedExistingObject. It saves the read and decode of the object
// when the suggestion is current; when it is not, the compare-and-swap
// fails and the loop goes on with what etcd has. A precondition or
// tryUpdate error, and a write that would change nothing, are trusted
// only on the object read from etcd.
func (s *store) GuaranteedUpdateFrom(ctx context.Context, key string, out runtime.Object, ignoreNotFound bool,
	pre *storage.Preconditions, tryUpdate storage.UpdateFunc, suggestion runtime.Object) error {
	k := s.full(key)
	var kv *mvccpb.KeyValue
	read := func() error {
		resp, err := s.client.Get(ctx, k)
		if err != nil {
			return fmt.Errorf("update %s: %w", key, err)
		}
		kv = nil
		if len(resp.Kvs) > 0 {
			kv = resp.Kvs[0]
		}
		return nil
	}
	// The state tryUpdate starts from: cur (nil data when absent), and
	// whether it was read from etcd.
	var (
		cur     runtime.Object
		curData []byte
		modRev  int64
		current bool
	)
	if suggestion != nil {
		if m, err := meta.Accessor(suggestion); err == nil {
			rev, err := parseRV(m.GetResourceVersion())
			if data, eerr := s.encode(suggestion); err == nil && eerr == nil && rev > 0 {
				cur, curData, modRev = suggestion, data, rev
			}
		}
	}
	if cur == nil {
		if err := read(); err != nil {
			return err
		}
		current = true
	}
	for {
		if current {
			cur, curData, modRev = s.newFn(), nil, 0
			if kv == nil {
				if !ignoreNotFound {
					return storage.NewNotFound(key)
				}
			} else {
				curData, modRev = kv.Value, kv.ModRevision
				if err := s.decode(curData, cur, modRev); err != nil {
					return err
				}
			}
		}
		// refresh reads etcd after a doubt about the suggestion.
		refresh := func() error {
			if err := read(); err != nil {
				return err
			}
			current = true
			return nil
		}
		if curData != nil {
			if err := checkPreconditions(key, pre, cur); err != nil {
				if current {
					return err
				}
				if err := refresh(); err != nil {
					return err
				}
				continue
			}
		}
		next, err := tryUpdate(cur)
		if err != nil {
			if current {
				return err
			}
			stale := modRev
			if rerr := refresh(); rerr != nil {
				return rerr
			}
			if kv != nil && kv.ModRevision == stale {
				return err // the suggestion was current
			}
			continue
		}
		data, err := s.encode(next)
		if err != nil {
			return err
		}
		if curData != nil && bytes.Equal(data, curData) {
			if !current {
				if err := refresh(); err != nil {
					return err
				}
				continue
			}
			return s.decode(curData, out, modRev)
		}
		var cmp clientv3.Cmp
		if curData == nil {
			cmp = clientv3.Compare(clientv3.CreateRevision(k), "=", 0)
		} else {
			cmp = clientv3.Compare(clientv3.ModRevision(k), "=", modRev)
		}
		tresp, err := s.client.Txn(ctx).If(cmp).Then(clientv3.OpPut(k, bytesString(data))).Else(clientv3.OpGet(k)).Commit()
		if err != nil {
			return fmt.Errorf("update %s: %w", key, err)
		}
		if tresp.Succeeded {
			if moveInto(out, next) {
				return setWritten(out, tresp.Header.Revision)
			}
			return s.decode(data, out, tresp.Header.Revision)
		}
		// Lost the race (or the suggestion was stale): retry with what is
		// there now.
		kv = nil
		if rr := tresp.Responses[0].GetResponseRange(); rr != nil && len(rr.Kvs) > 0 {
			kv = rr.Kvs[0]
		}
		current = true
	}
}

func checkPreconditions(key string, pre *storage.Preconditions, obj runtime.Object) error {
	if pre == nil {
		return nil
	}
	m, err := meta.Accessor(obj)
	if err != nil {
		return err
	}
	if pre.UID != nil && *pre.UID != m.GetUID() {
		return storage.NewConflict(key, fmt.Sprintf("Precondition failed: UID in precondition: %v, UID in object meta: %v", *pre.UID, m.GetUID()))
	}
	if pre.ResourceVersion != nil && *pre.ResourceVersion != m.GetResourceVersion() {
		return storage.NewConflict(key, fmt.Sprintf("Precondition failed: ResourceVersion in precondition: %v, ResourceVersion in object meta: %v", *pre.ResourceVersion, m.GetResourceVersion()))
	}
	return nil
}

func (s *store) Delete(ctx context.Context, key string, out runtime.Object, pre *storage.Preconditions, validate storage.ValidateObjectFunc) error {
	k := s.full(key)
	resp, err := s.client.Get(ctx, k)
	if err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	var kv *mvccpb.KeyValue
	if len(resp.Kvs) > 0 {
		kv = resp.Kvs[0]
	}
	for {
		if kv == nil {
			return storage.NewNotFound(key)
		}
		cur := s.newFn()
		if err := s.decode(kv.Value, cur, kv.ModRevision); err != nil {
			return err
		}
		if err := checkPreconditions(key, pre, cur); err != nil {
			return err
		}
		if validate != nil {
			if err := validate(ctx, cur); err != nil {
				return err
			}
		}
		tresp, err := s.client.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(k), "=", kv.ModRevision)).
			Then(clientv3.OpDelete(k)).Else(clientv3.OpGet(k)).Commit()
		if err != nil {
			return fmt.Errorf("delete %s: %w", key, err)
		}
		if tresp.Succeeded {
			if out != nil {
				return s.decode(kv.Value, out, tresp.Header.Revision)
			}
			return nil
		}
		kv = nil
		if rr := tresp.Responses[0].GetResponseRange(); rr != nil && len(rr.Kvs) > 0 {
			kv = rr.Kvs[0]
		}
	}
}

func (s *store) CurrentRevision(ctx context.Context) (int64, error) {
	resp, err := s.client.Get(ctx, "/skiff-revision-probe", clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("current revision: %w", err)
	}
	return resp.Header.Revision, nil
}

func (s *store) Count(ctx context.Context, prefix string) (int64, error) {
	k := s.full(prefix)
	if !strings.HasSuffix(k, "/") {
		k += "/"
	}
	resp, err := s.client.Get(ctx, k, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("count %s: %w", prefix, err)
	}
	return resp.Count, nil
}
