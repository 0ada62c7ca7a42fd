// Package proxy is the node's Service proxy: kube-proxy's nftables mode, on
// sigs.k8s.io/knftables. It is an API client only — informers on Services,
// EndpointSlices and this node's Node — and programs one nftables table of its
// own (Config.Table, family ip) and nothing else on the host.
//
// Every Service renders (render.go) to the chains, affinity sets and map
// elements it contributes; the shared maps (service-ips, service-nodeports,
// no-endpoint-services, no-endpoint-nodeports) dispatch by key to per-service
// chains, so a change to one Service is one small transaction touching only
// its own chains and elements (writeDiff turns the last applied render into
// the new one). At start, and after any failed transaction, the whole table
// is deleted and rebuilt in one transaction, so rules of Services deleted while
// the proxy was down disappear. On stop the rules stay, as kube-proxy's do.
//
// It must not touch other tables, conntrack state or links; the pod network
// (bridge, br_netfilter) belongs to the kubelet and the agent.
package proxy
