// Package manager runs the controllers of `skiff controller-manager` (also
// inside `skiff server`): it builds one shared informer factory, starts the
// selected controllers from a name → constructor registry, and runs them
// only while holding the kube-system/kube-controller-manager Lease, so
// several servers run one active set of controllers. Each leadership term
// starts from fresh informers; nothing carries over in memory.
package manager
