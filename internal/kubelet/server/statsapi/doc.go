// Package statsapi is the kubelet's stats Summary API (GET /stats/summary)
// in the JSON shape of upstream's k8s.io/kubelet/pkg/apis/stats/v1alpha1,
// which metrics-server and `kubectl get --raw .../proxy/stats/summary`
// read. It holds types only: the kubelet fills them, the server writes
// them.
package statsapi
