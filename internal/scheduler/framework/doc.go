// Package framework is the scheduler's plugin framework, in the spirit of
// kube-scheduler's: per scheduling cycle, PreFilter plugins see the whole
// Snapshot once (for constraints over topology domains) and keep what they
// computed in the CycleState; Filter (can the pod run on this node?) and
// Score (how good is it?) then run per NodeInfo; PreScore and
// NormalizeScore bracket Score. It holds no API client and does no I/O
// (Listers are informer caches).
package framework
