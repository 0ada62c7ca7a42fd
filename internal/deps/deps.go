//go:build tools

// Package deps pins the modules skiff builds on, so `go mod tidy` keeps them
// before the code that uses them lands.
package deps

import (
	_ "github.com/gorilla/websocket"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "go.etcd.io/etcd/client/v3"
	_ "go.etcd.io/etcd/server/v3/embed"
	_ "k8s.io/api/core/v1"
	_ "k8s.io/apimachinery/pkg/util/managedfields"
	_ "k8s.io/client-go/applyconfigurations"
	_ "k8s.io/client-go/kubernetes"
	_ "k8s.io/kube-openapi/pkg/handler"
	_ "k8s.io/kube-openapi/pkg/handler3"
	_ "sigs.k8s.io/yaml"
)
