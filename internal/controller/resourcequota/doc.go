// Package resourcequota keeps each ResourceQuota's status current:
// status.hard mirrors spec.hard and status.used holds, for every resource
// named in spec.hard, what the namespace uses now — pods (not terminal,
// filtered by the quota's scopes), their requests and limits (cpu, memory,
// ephemeral-storage, extended resources, hugepages), services (also
// load balancers and node ports), persistent volume claims and their
// requested storage (also per storage class), and the object count of any
// resource as count/<resource>.<group> (configmaps, secrets, …).
//
// It recomputes a namespace's quotas when a tracked object there is
// created, deleted or changes what it uses, and every quota every 5
// minutes. It writes only the status of ResourceQuotas. Enforcing the
// quota when objects are created (admission) is not here and not done
// anywhere yet.
package resourcequota
