// Package deployment rolls Deployments out through ReplicaSets as upstream
// does: one ReplicaSet per pod template (named with the template hash),
// RollingUpdate within maxSurge/maxUnavailable or Recreate, proportional
// scaling during a rollout, pause/resume, revision annotations (which
// `kubectl rollout history|undo` read), revision history clean-up, and the
// Available/Progressing conditions with progressDeadlineSeconds.
//
// It manages ReplicaSets only; the ReplicaSet controller manages pods.
package deployment
