// Package history keeps the ControllerRevisions of the StatefulSet and
// DaemonSet controllers, as upstream's controller history: each revision
// stores its owner's pod template as a strategic-merge patch
// ({"spec":{"template":{…,"$patch":"replace"}}}) so `kubectl rollout
// history` shows it and `kubectl rollout undo` patches it back. It names,
// hashes, creates (resolving hash collisions), and truncates revisions; it
// does not decide which revision is current (that is the owner's policy).
package history
