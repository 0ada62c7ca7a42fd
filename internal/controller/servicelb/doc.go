// Package servicelb is the ServiceLB controller, as K3s's: it gives every
// Service of type LoadBalancer without a loadBalancerClass its
// status.loadBalancer.ingress. By default the ingress is the InternalIPs of
// the Ready nodes (kept current as nodes come, go and change readiness);
// with an address pool (--service-lb-pool) each Service gets one address of
// its own from the pool, released when the Service is deleted, changes type
// or gets a class.
//
// It writes only Service status and events; routing traffic that arrives at
// those addresses is the proxy's job.
package servicelb
