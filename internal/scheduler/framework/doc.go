// Package framework is the scheduler's plugin framework, in the spirit of
// kube-scheduler's: plugins implement Filter (can the pod run on this
// node?) and Score (how good is it?) over a NodeInfo snapshot. It holds no
// API client and does no I/O.
package framework
