package nodelifecycle

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestEvictionTime(t *testing.T) {
	added := metav1.NewTime(time.Unix(1000, 0))
	unreachable := corev1.Taint{Key: TaintUnreachable, Effect: corev1.TaintEffectNoExecute, TimeAdded: &added}
	secs := func(s int64) *int64 { return &s }
	tests := []struct {
		name      string
		tols      []corev1.Toleration
		wantEvict bool
		wantAt    time.Time
	}{
		{"no toleration: now", nil, true, time.Time{}},
		{"default 300s toleration", []corev1.Toleration{{Key: TaintUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: secs(300)}}, true, added.Add(300 * time.Second)},
		{"tolerated forever", []corev1.Toleration{{Operator: corev1.TolerationOpExists}}, false, time.Time{}},
		{"shortest toleration wins", []corev1.Toleration{
			{Key: TaintUnreachable, Operator: corev1.TolerationOpExists, TolerationSeconds: secs(300)},
			{Key: TaintUnreachable, Operator: corev1.TolerationOpExists, TolerationSeconds: secs(5)},
		}, true, added.Add(5 * time.Second)},
		{"NoSchedule toleration does not count", []corev1.Toleration{{Key: TaintUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}, true, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &corev1.Pod{Spec: corev1.PodSpec{Tolerations: tt.tols}}
			at, evict := evictionTime(p, []corev1.Taint{unreachable})
			if evict != tt.wantEvict || (evict && !at.Equal(tt.wantAt)) {
				t.Fatalf("got %v at %v, want %v at %v", evict, at, tt.wantEvict, tt.wantAt)
			}
		})
	}
}

func TestWantTaints(t *testing.T) {
	node := func(s corev1.ConditionStatus) *corev1.Node {
		return &corev1.Node{Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: s}}}}
	}
	if got := wantTaints(node(corev1.ConditionTrue)); len(got) != 0 {
		t.Fatalf("ready node: %v", got)
	}
	if got := wantTaints(node(corev1.ConditionUnknown)); len(got) != 2 || got[1].Key != TaintUnreachable || got[1].Effect != corev1.TaintEffectNoExecute {
		t.Fatalf("unknown node: %v", got)
	}
	if got := wantTaints(node(corev1.ConditionFalse)); len(got) != 2 || got[0].Key != TaintNotReady {
		t.Fatalf("not ready node: %v", got)
	}
}

func TestObserveUsesLocalClock(t *testing.T) {
	c := &Controller{health: map[string]*health{}}
	now := time.Unix(5000, 0)
	c.now = func() time.Time { return now }
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n"}, Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{
		{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: metav1.NewTime(time.Unix(1, 0))}}}}
	if got := c.observe(n, nil); !got.Equal(now) {
		t.Fatal("first sight is a fresh probe")
	}
	now = now.Add(time.Minute)
	if got := c.observe(n, nil); !got.Equal(time.Unix(5000, 0)) {
		t.Fatal("no change keeps the old probe time")
	}
	n.Status.Conditions[0].LastHeartbeatTime = metav1.NewTime(time.Unix(2, 0))
	if got := c.observe(n, nil); !got.Equal(now) {
		t.Fatal("a new heartbeat, however old its timestamp, is a fresh probe")
	}
}
