// Package podgc is the pod garbage collector, as upstream's: every 20 s it
// force-deletes (grace period 0)
//
//   - terminated pods (Succeeded or Failed) beyond
//     Options.TerminatedPodGCThreshold, evicted ones first, then oldest first;
//   - pods bound to a Node that no longer exists, once the Node has been
//     missing for a 40 s quarantine and a live GET confirms it is gone; they
//     are first marked Failed with a DisruptionTarget condition (reason
//     DeletionByPodGC) so their owners see why;
//   - terminating pods that were never scheduled (no kubelet will finish
//     them);
//   - terminating pods on NotReady nodes tainted node.kubernetes.io/out-of-service.
//
// Non-terminal pods are patched to phase Failed before deletion. It writes
// only through the API and deletes nothing but pods.
package podgc
