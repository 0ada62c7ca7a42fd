package printers

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/duration"
)

const none = "<none>"

func orNone(s string) string {
	if s == "" {
		return none
	}
	return s
}

func init() {
	register("", "v1", "pods", podColumns)
	register("", "v1", "nodes", nodeColumns)
	register("", "v1", "namespaces", func() []column {
		return []column{nameCol(),
			col("Status", "string", 0, "The status of the namespace", func(n *corev1.Namespace, _ time.Time) interface{} { return string(n.Status.Phase) }),
			ageCol()}
	})
	register("", "v1", "services", serviceColumns)
	register("", "v1", "configmaps", func() []column {
		return []column{nameCol(),
			col("Data", "string", 0, "", func(c *corev1.ConfigMap, _ time.Time) interface{} { return int64(len(c.Data) + len(c.BinaryData)) }),
			ageCol()}
	})
	register("", "v1", "secrets", func() []column {
		return []column{nameCol(),
			col("Type", "string", 0, "", func(s *corev1.Secret, _ time.Time) interface{} { return string(s.Type) }),
			col("Data", "string", 0, "", func(s *corev1.Secret, _ time.Time) interface{} { return int64(len(s.Data)) }),
			ageCol()}
	})
	register("", "v1", "serviceaccounts", func() []column {
		return []column{nameCol(),
			col("Secrets", "string", 0, "", func(s *corev1.ServiceAccount, _ time.Time) interface{} { return int64(len(s.Secrets)) }),
			ageCol()}
	})
	register("", "v1", "endpoints", func() []column {
		return []column{nameCol(),
			col("Endpoints", "string", 0, "Endpoints is the list of endpoints in the object.", func(e *corev1.Endpoints, _ time.Time) interface{} { return formatEndpoints(e) }),
			ageCol()}
	})
	register("", "v1", "events", eventColumns)
	register("", "v1", "persistentvolumeclaims", pvcColumns)
	register("", "v1", "persistentvolumes", pvColumns)
	register("", "v1", "replicationcontrollers", func() []column {
		return []column{nameCol(),
			col("Desired", "integer", 0, "Number of desired pods.", func(r *corev1.ReplicationController, _ time.Time) interface{} { return int64(deref(r.Spec.Replicas)) }),
			col("Current", "integer", 0, "Number of actually running pods.", func(r *corev1.ReplicationController, _ time.Time) interface{} { return int64(r.Status.Replicas) }),
			col("Ready", "integer", 0, "Number of pods ready.", func(r *corev1.ReplicationController, _ time.Time) interface{} { return int64(r.Status.ReadyReplicas) }),
			ageCol(),
			col("Containers", "string", 1, "Names of each container in the template.", func(r *corev1.ReplicationController, _ time.Time) interface{} {
				return containerNames(templateSpec(r.Spec.Template))
			}),
			col("Images", "string", 1, "Images referenced by each container in the template.", func(r *corev1.ReplicationController, _ time.Time) interface{} {
				return containerImages(templateSpec(r.Spec.Template))
			}),
			col("Selector", "string", 1, "Label selector for pods.", func(r *corev1.ReplicationController, _ time.Time) interface{} {
				return labels.FormatLabels(r.Spec.Selector)
			}),
		}
	})
}

func templateSpec(t *corev1.PodTemplateSpec) *corev1.PodSpec {
	if t == nil {
		return &corev1.PodSpec{}
	}
	return &t.Spec
}

func deref(p *int32) int32 {
	if p == nil {
		return 0
	}
	return *p
}

func containerNames(spec *corev1.PodSpec) string {
	names := make([]string, len(spec.Containers))
	for i, c := range spec.Containers {
		names[i] = c.Name
	}
	return strings.Join(names, ",")
}

func containerImages(spec *corev1.PodSpec) string {
	images := make([]string, len(spec.Containers))
	for i, c := range spec.Containers {
		images[i] = c.Image
	}
	return strings.Join(images, ",")
}

func podColumns() []column {
	return []column{nameCol(),
		col("Ready", "string", 0, "The aggregate readiness state of this pod for accepting traffic.", func(p *corev1.Pod, now time.Time) interface{} { return podRow(p, now).ready }),
		col("Status", "string", 0, "The aggregate status of the containers in this pod.", func(p *corev1.Pod, now time.Time) interface{} { return podRow(p, now).status }),
		col("Restarts", "string", 0, "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.", func(p *corev1.Pod, now time.Time) interface{} { return podRow(p, now).restarts }),
		ageCol(),
		col("IP", "string", 1, "IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.", func(p *corev1.Pod, _ time.Time) interface{} { return orNone(p.Status.PodIP) }),
		col("Node", "string", 1, "NodeName is a request to schedule this pod onto a specific node.", func(p *corev1.Pod, _ time.Time) interface{} { return orNone(p.Spec.NodeName) }),
		col("Nominated Node", "string", 1, "nominatedNodeName is set only when this pod preempts other pods on the node.", func(p *corev1.Pod, _ time.Time) interface{} { return orNone(p.Status.NominatedNodeName) }),
		col("Readiness Gates", "string", 1, "If specified, all readiness gates will be evaluated for pod readiness.", func(p *corev1.Pod, _ time.Time) interface{} { return readinessGates(p) }),
	}
}

type podCells struct{ ready, status, restarts string }

// podRow computes READY, STATUS and RESTARTS as kubectl users know them.
func podRow(pod *corev1.Pod, now time.Time) podCells {
	restarts, restartableInit := 0, 0
	total := len(pod.Spec.Containers)
	ready := 0
	var lastRestart time.Time
	noteRestart := func(s corev1.ContainerStatus) {
		restarts += int(s.RestartCount)
		if t := s.LastTerminationState.Terminated; t != nil && t.FinishedAt.After(lastRestart) {
			lastRestart = t.FinishedAt.Time
		}
	}
	reason := string(pod.Status.Phase)
	if pod.Status.Reason != "" {
		reason = pod.Status.Reason
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Reason == corev1.PodReasonSchedulingGated {
			reason = corev1.PodReasonSchedulingGated
		}
	}
	initRestartable := map[string]bool{}
	for _, c := range pod.Spec.InitContainers {
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			initRestartable[c.Name] = true
			restartableInit++
		}
	}
	total += restartableInit
	initializing := false
	for i, s := range pod.Status.InitContainerStatuses {
		noteRestart(s)
		if initRestartable[s.Name] && s.Started != nil && *s.Started {
			if s.Ready {
				ready++
			}
			continue
		}
		switch {
		case s.State.Terminated != nil && s.State.Terminated.ExitCode == 0:
			continue
		case s.State.Terminated != nil:
			switch {
			case s.State.Terminated.Reason != "":
				reason = "Init:" + s.State.Terminated.Reason
			case s.State.Terminated.Signal != 0:
				reason = fmt.Sprintf("Init:Signal:%d", s.State.Terminated.Signal)
			default:
				reason = fmt.Sprintf("Init:ExitCode:%d", s.State.Terminated.ExitCode)
			}
		case s.State.Waiting != nil && s.State.Waiting.Reason != "" && s.State.Waiting.Reason != "PodInitializing":
			reason = "Init:" + s.State.Waiting.Reason
		default:
			reason = fmt.Sprintf("Init:%d/%d", i, len(pod.Spec.InitContainers))
		}
		initializing = true
		break
	}
	if !initializing || isPodInitialized(pod) {
		restarts = 0
		for _, s := range pod.Status.InitContainerStatuses {
			if initRestartable[s.Name] {
				restarts += int(s.RestartCount)
			}
		}
		hasRunning := false
		for i := len(pod.Status.ContainerStatuses) - 1; i >= 0; i-- {
			s := pod.Status.ContainerStatuses[i]
			noteRestart(s)
			switch {
			case s.State.Waiting != nil && s.State.Waiting.Reason != "":
				reason = s.State.Waiting.Reason
			case s.State.Terminated != nil && s.State.Terminated.Reason != "":
				reason = s.State.Terminated.Reason
			case s.State.Terminated != nil && s.State.Terminated.Signal != 0:
				reason = fmt.Sprintf("Signal:%d", s.State.Terminated.Signal)
			case s.State.Terminated != nil:
				reason = fmt.Sprintf("ExitCode:%d", s.State.Terminated.ExitCode)
			case s.Ready && s.State.Running != nil:
				hasRunning = true
				ready++
			}
		}
		if reason == "Completed" && hasRunning {
			reason = "NotReady"
			if hasPodReadyCondition(pod.Status.Conditions) {
				reason = "Running"
			}
		}
	}
	if pod.DeletionTimestamp != nil {
		if pod.Status.Reason == "NodeLost" {
			reason = "Unknown"
		} else if pod.Status.Phase != corev1.PodFailed && pod.Status.Phase != corev1.PodSucceeded {
			reason = "Terminating"
		}
	}
	r := strconv.Itoa(restarts)
	if restarts > 0 && !lastRestart.IsZero() {
		r = fmt.Sprintf("%d (%s ago)", restarts, duration.HumanDuration(now.Sub(lastRestart)))
	}
	return podCells{ready: fmt.Sprintf("%d/%d", ready, total), status: reason, restarts: r}
}

func isPodInitialized(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodInitialized && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

func hasPodReadyCondition(conds []corev1.PodCondition) bool {
	for _, c := range conds {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

func readinessGates(p *corev1.Pod) string {
	if len(p.Spec.ReadinessGates) == 0 {
		return none
	}
	met := 0
	for _, g := range p.Spec.ReadinessGates {
		for _, c := range p.Status.Conditions {
			if c.Type == g.ConditionType && c.Status == corev1.ConditionTrue {
				met++
			}
		}
	}
	return fmt.Sprintf("%d/%d", met, len(p.Spec.ReadinessGates))
}

func nodeColumns() []column {
	return []column{nameCol(),
		col("Status", "string", 0, "The status of the node", func(n *corev1.Node, _ time.Time) interface{} { return nodeStatus(n) }),
		col("Roles", "string", 0, "The roles of the node", func(n *corev1.Node, _ time.Time) interface{} { return nodeRoles(n) }),
		ageCol(),
		col("Version", "string", 0, "Kubelet Version reported by the node.", func(n *corev1.Node, _ time.Time) interface{} { return n.Status.NodeInfo.KubeletVersion }),
		col("Internal-IP", "string", 1, "List of addresses reachable to the node. Queried from cloud provider, if available.", func(n *corev1.Node, _ time.Time) interface{} {
			return nodeAddress(n, corev1.NodeInternalIP)
		}),
		col("External-IP", "string", 1, "List of addresses reachable to the node. Queried from cloud provider, if available.", func(n *corev1.Node, _ time.Time) interface{} {
			return nodeAddress(n, corev1.NodeExternalIP)
		}),
		col("OS-Image", "string", 1, "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).", func(n *corev1.Node, _ time.Time) interface{} { return orUnknown(n.Status.NodeInfo.OSImage) }),
		col("Kernel-Version", "string", 1, "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).", func(n *corev1.Node, _ time.Time) interface{} { return orUnknown(n.Status.NodeInfo.KernelVersion) }),
		col("Container-Runtime", "string", 1, "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).", func(n *corev1.Node, _ time.Time) interface{} {
			return orUnknown(n.Status.NodeInfo.ContainerRuntimeVersion)
		}),
	}
}

func orUnknown(s string) string {
	if s == "" {
		return "<unknown>"
	}
	return s
}

func nodeStatus(n *corev1.Node) string {
	var status []string
	seen := map[corev1.NodeConditionType]bool{}
	for _, c := range n.Status.Conditions {
		if c.Type != corev1.NodeReady || seen[c.Type] {
			continue
		}
		seen[c.Type] = true
		if c.Status == corev1.ConditionTrue {
			status = append(status, "Ready")
		} else {
			status = append(status, "NotReady")
		}
	}
	if len(status) == 0 {
		status = append(status, "Unknown")
	}
	if n.Spec.Unschedulable {
		status = append(status, "SchedulingDisabled")
	}
	return strings.Join(status, ",")
}

func nodeRoles(n *corev1.Node) string {
	roles := map[string]bool{}
	for k, v := range n.Labels {
		switch {
		case strings.HasPrefix(k, "node-role.kubernetes.io/"):
			if r := strings.TrimPrefix(k, "node-role.kubernetes.io/"); r != "" {
				roles[r] = true
			}
		case k == "kubernetes.io/role" && v != "":
			roles[v] = true
		}
	}
	if len(roles) == 0 {
		return none
	}
	list := make([]string, 0, len(roles))
	for r := range roles {
		list = append(list, r)
	}
	sort.Strings(list)
	return strings.Join(list, ",")
}

func nodeAddress(n *corev1.Node, t corev1.NodeAddressType) string {
	for _, a := range n.Status.Addresses {
		if a.Type == t {
			return a.Address
		}
	}
	return none
}

func serviceColumns() []column {
	return []column{nameCol(),
		col("Type", "string", 0, "type determines how the Service is exposed.", func(s *corev1.Service, _ time.Time) interface{} { return string(s.Spec.Type) }),
		col("Cluster-IP", "string", 0, "clusterIP is the IP address of the service and is usually assigned randomly.", func(s *corev1.Service, _ time.Time) interface{} {
			if s.Spec.Type == corev1.ServiceTypeExternalName {
				return none
			}
			return orNone(s.Spec.ClusterIP)
		}),
		col("External-IP", "string", 0, "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.", func(s *corev1.Service, _ time.Time) interface{} { return externalIP(s) }),
		col("Port(s)", "string", 0, "The list of ports that are exposed by this service.", func(s *corev1.Service, _ time.Time) interface{} { return servicePorts(s) }),
		ageCol(),
		col("Selector", "string", 1, "Route service traffic to pods with label keys and values matching this selector.", func(s *corev1.Service, _ time.Time) interface{} {
			return labels.FormatLabels(s.Spec.Selector)
		}),
	}
}

func externalIP(s *corev1.Service) string {
	switch s.Spec.Type {
	case corev1.ServiceTypeClusterIP, corev1.ServiceTypeNodePort:
		if len(s.Spec.ExternalIPs) > 0 {
			return strings.Join(s.Spec.ExternalIPs, ",")
		}
		return none
	case corev1.ServiceTypeLoadBalancer:
		var ips []string
		for _, in := range s.Status.LoadBalancer.Ingress {
			if in.IP != "" {
				ips = append(ips, in.IP)
			} else if in.Hostname != "" {
				ips = append(ips, in.Hostname)
			}
		}
		ips = append(ips, s.Spec.ExternalIPs...)
		if len(ips) == 0 {
			return "<pending>"
		}
		return strings.Join(ips, ",")
	case corev1.ServiceTypeExternalName:
		return s.Spec.ExternalName
	}
	return "<unknown>"
}

func servicePorts(s *corev1.Service) string {
	if len(s.Spec.Ports) == 0 {
		return none
	}
	parts := make([]string, len(s.Spec.Ports))
	for i, p := range s.Spec.Ports {
		if p.NodePort > 0 {
			parts[i] = fmt.Sprintf("%d:%d/%s", p.Port, p.NodePort, p.Protocol)
		} else {
			parts[i] = fmt.Sprintf("%d/%s", p.Port, p.Protocol)
		}
	}
	return strings.Join(parts, ",")
}

func formatEndpoints(e *corev1.Endpoints) string {
	var list []string
	count := 0
	for _, ss := range e.Subsets {
		for _, a := range ss.Addresses {
			if len(ss.Ports) == 0 {
				count++
				if len(list) < 3 {
					list = append(list, a.IP)
				}
				continue
			}
			for _, p := range ss.Ports {
				count++
				if len(list) < 3 {
					list = append(list, fmt.Sprintf("%s:%d", a.IP, p.Port))
				}
			}
		}
	}
	if count == 0 {
		return none
	}
	out := strings.Join(list, ",")
	if count > len(list) {
		out += fmt.Sprintf(" + %d more...", count-len(list))
	}
	return out
}

func eventColumns() []column {
	return []column{
		col("Last Seen", "string", 0, "Time when last event occurred", func(e *corev1.Event, now time.Time) interface{} {
			switch {
			case !e.LastTimestamp.IsZero():
				return age(e.LastTimestamp, now)
			case e.EventTime.Time.IsZero():
				return age(e.CreationTimestamp, now)
			}
			return age(metav1.NewTime(e.EventTime.Time), now)
		}),
		col("Type", "string", 0, "Type of this event (Normal, Warning), new types could be added in the future.", func(e *corev1.Event, _ time.Time) interface{} { return e.Type }),
		col("Reason", "string", 0, "The reason for this event.", func(e *corev1.Event, _ time.Time) interface{} { return e.Reason }),
		col("Object", "string", 0, "The object this event is about.", func(e *corev1.Event, _ time.Time) interface{} {
			return strings.ToLower(e.InvolvedObject.Kind) + "/" + e.InvolvedObject.Name
		}),
		col("Subobject", "string", 1, "The subobject this event is about.", func(e *corev1.Event, _ time.Time) interface{} { return e.InvolvedObject.FieldPath }),
		col("Source", "string", 1, "The component reporting this event.", func(e *corev1.Event, _ time.Time) interface{} {
			s := e.Source.Component
			if s == "" {
				s = e.ReportingController
			}
			if e.Source.Host != "" {
				s += ", " + e.Source.Host
			}
			return s
		}),
		col("Message", "string", 0, "A human-readable description of the status of this operation.", func(e *corev1.Event, _ time.Time) interface{} { return strings.TrimSpace(e.Message) }),
		col("First Seen", "string", 1, "Time when first event occurred", func(e *corev1.Event, now time.Time) interface{} {
			if e.FirstTimestamp.IsZero() {
				return age(e.CreationTimestamp, now)
			}
			return age(e.FirstTimestamp, now)
		}),
		col("Count", "string", 1, "The number of times this event has occurred.", func(e *corev1.Event, _ time.Time) interface{} {
			if e.Count == 0 {
				return int64(1)
			}
			return int64(e.Count)
		}),
		col("Name", "string", 1, nameDesc, func(e *corev1.Event, _ time.Time) interface{} { return e.Name }),
	}
}

func accessModes(modes []corev1.PersistentVolumeAccessMode) string {
	short := map[corev1.PersistentVolumeAccessMode]string{corev1.ReadWriteOnce: "RWO", corev1.ReadOnlyMany: "ROX",
		corev1.ReadWriteMany: "RWX", corev1.ReadWriteOncePod: "RWOP"}
	var out []string
	for _, m := range modes {
		out = append(out, short[m])
	}
	return strings.Join(out, ",")
}

func pvcColumns() []column {
	return []column{nameCol(),
		col("Status", "string", 0, "", func(p *corev1.PersistentVolumeClaim, _ time.Time) interface{} { return string(p.Status.Phase) }),
		col("Volume", "string", 0, "", func(p *corev1.PersistentVolumeClaim, _ time.Time) interface{} { return p.Spec.VolumeName }),
		col("Capacity", "string", 0, "", func(p *corev1.PersistentVolumeClaim, _ time.Time) interface{} {
			if q, ok := p.Status.Capacity[corev1.ResourceStorage]; ok {
				return q.String()
			}
			return ""
		}),
		col("Access Modes", "string", 0, "", func(p *corev1.PersistentVolumeClaim, _ time.Time) interface{} {
			return accessModes(p.Status.AccessModes)
		}),
		col("StorageClass", "string", 0, "", func(p *corev1.PersistentVolumeClaim, _ time.Time) interface{} {
			return orUnset(p.Spec.StorageClassName)
		}),
		col("VolumeAttributesClass", "string", 0, "", func(p *corev1.PersistentVolumeClaim, _ time.Time) interface{} {
			return orUnset(p.Spec.VolumeAttributesClassName)
		}),
		ageCol(),
		col("VolumeMode", "string", 1, "", func(p *corev1.PersistentVolumeClaim, _ time.Time) interface{} { return volumeMode(p.Spec.VolumeMode) }),
	}
}

func pvColumns() []column {
	return []column{nameCol(),
		col("Capacity", "string", 0, "", func(p *corev1.PersistentVolume, _ time.Time) interface{} {
			q := p.Spec.Capacity[corev1.ResourceStorage]
			return q.String()
		}),
		col("Access Modes", "string", 0, "", func(p *corev1.PersistentVolume, _ time.Time) interface{} { return accessModes(p.Spec.AccessModes) }),
		col("Reclaim Policy", "string", 0, "", func(p *corev1.PersistentVolume, _ time.Time) interface{} {
			return string(p.Spec.PersistentVolumeReclaimPolicy)
		}),
		col("Status", "string", 0, "", func(p *corev1.PersistentVolume, _ time.Time) interface{} { return string(p.Status.Phase) }),
		col("Claim", "string", 0, "", func(p *corev1.PersistentVolume, _ time.Time) interface{} {
			if p.Spec.ClaimRef == nil {
				return ""
			}
			return p.Spec.ClaimRef.Namespace + "/" + p.Spec.ClaimRef.Name
		}),
		col("StorageClass", "string", 0, "", func(p *corev1.PersistentVolume, _ time.Time) interface{} { return p.Spec.StorageClassName }),
		col("VolumeAttributesClass", "string", 0, "", func(p *corev1.PersistentVolume, _ time.Time) interface{} {
			return orUnset(p.Spec.VolumeAttributesClassName)
		}),
		col("Reason", "string", 0, "", func(p *corev1.PersistentVolume, _ time.Time) interface{} { return p.Status.Reason }),
		ageCol(),
		col("VolumeMode", "string", 1, "", func(p *corev1.PersistentVolume, _ time.Time) interface{} { return volumeMode(p.Spec.VolumeMode) }),
	}
}

func orUnset(s *string) string {
	if s == nil || *s == "" {
		return "<unset>"
	}
	return *s
}

func volumeMode(m *corev1.PersistentVolumeMode) string {
	if m == nil {
		return "<unset>"
	}
	return string(*m)
}
