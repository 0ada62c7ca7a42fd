// Package scheduler assigns pods to nodes, as kube-scheduler does: it
// watches pods and nodes through the API (client-go informers), keeps a
// queue of pods waiting for a node, runs the framework's filter and score
// plugins over a snapshot of the nodes and binds the pod through the
// pods/binding subresource. It never touches storage directly.
package scheduler
