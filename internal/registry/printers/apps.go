package printers

import (
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	policyv1 "k8s.io/api/policy/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
)

func selectorString(sel *metav1.LabelSelector) string {
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return "<error>"
	}
	if s.Empty() {
		return none
	}
	return s.String()
}

// templateColumns are the wide Containers, Images and Selector columns.
func templateColumns[T runtime.Object](spec func(T) *corev1.PodSpec, sel func(T) *metav1.LabelSelector) []column {
	return []column{
		col("Containers", "string", 1, "Names of each container in the template.", func(o T, _ time.Time) interface{} { return containerNames(spec(o)) }),
		col("Images", "string", 1, "Images referenced by each container in the template.", func(o T, _ time.Time) interface{} { return containerImages(spec(o)) }),
		col("Selector", "string", 1, "Label selector for pods.", func(o T, _ time.Time) interface{} { return selectorString(sel(o)) }),
	}
}

func init() {
	register("apps", "v1", "deployments", func() []column {
		return append([]column{nameCol(),
			col("Ready", "string", 0, "Number of the pod with ready state", func(d *appsv1.Deployment, _ time.Time) interface{} {
				return fmt.Sprintf("%d/%d", d.Status.ReadyReplicas, deref(d.Spec.Replicas))
			}),
			col("Up-to-date", "integer", 0, "Total number of non-terminated pods targeted by this deployment that have the desired template spec.", func(d *appsv1.Deployment, _ time.Time) interface{} {
				return int64(d.Status.UpdatedReplicas)
			}),
			col("Available", "integer", 0, "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.", func(d *appsv1.Deployment, _ time.Time) interface{} {
				return int64(d.Status.AvailableReplicas)
			}),
			ageCol()},
			templateColumns(func(d *appsv1.Deployment) *corev1.PodSpec { return &d.Spec.Template.Spec }, func(d *appsv1.Deployment) *metav1.LabelSelector { return d.Spec.Selector })...)
	})
	register("apps", "v1", "replicasets", func() []column {
		return append([]column{nameCol(),
			col("Desired", "integer", 0, "Number of desired pods.", func(r *appsv1.ReplicaSet, _ time.Time) interface{} { return int64(deref(r.Spec.Replicas)) }),
			col("Current", "integer", 0, "Number of actually running pods.", func(r *appsv1.ReplicaSet, _ time.Time) interface{} { return int64(r.Status.Replicas) }),
			col("Ready", "integer", 0, "Number of pods ready.", func(r *appsv1.ReplicaSet, _ time.Time) interface{} { return int64(r.Status.ReadyReplicas) }),
			ageCol()},
			templateColumns(func(r *appsv1.ReplicaSet) *corev1.PodSpec { return &r.Spec.Template.Spec }, func(r *appsv1.ReplicaSet) *metav1.LabelSelector { return r.Spec.Selector })...)
	})
	register("apps", "v1", "statefulsets", func() []column {
		cols := append([]column{nameCol(),
			col("Ready", "string", 0, "Number of the pod with ready state", func(s *appsv1.StatefulSet, _ time.Time) interface{} {
				return fmt.Sprintf("%d/%d", s.Status.ReadyReplicas, deref(s.Spec.Replicas))
			}),
			ageCol()},
			templateColumns(func(s *appsv1.StatefulSet) *corev1.PodSpec { return &s.Spec.Template.Spec }, func(s *appsv1.StatefulSet) *metav1.LabelSelector { return s.Spec.Selector })...)
		return cols[:len(cols)-1] // upstream prints no selector for statefulsets
	})
	register("apps", "v1", "daemonsets", func() []column {
		return append([]column{nameCol(),
			col("Desired", "integer", 0, "The total number of nodes that should be running the daemon pod.", func(d *appsv1.DaemonSet, _ time.Time) interface{} { return int64(d.Status.DesiredNumberScheduled) }),
			col("Current", "integer", 0, "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod.", func(d *appsv1.DaemonSet, _ time.Time) interface{} { return int64(d.Status.CurrentNumberScheduled) }),
			col("Ready", "integer", 0, "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready.", func(d *appsv1.DaemonSet, _ time.Time) interface{} { return int64(d.Status.NumberReady) }),
			col("Up-to-date", "integer", 0, "The total number of nodes that are running updated daemon pod", func(d *appsv1.DaemonSet, _ time.Time) interface{} { return int64(d.Status.UpdatedNumberScheduled) }),
			col("Available", "integer", 0, "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)", func(d *appsv1.DaemonSet, _ time.Time) interface{} {
				return int64(d.Status.NumberAvailable)
			}),
			col("Node Selector", "string", 0, "NodeSelector is a selector which must be true for the pod to fit on a node.", func(d *appsv1.DaemonSet, _ time.Time) interface{} {
				return orNone(labels.FormatLabels(d.Spec.Template.Spec.NodeSelector))
			}),
			ageCol()},
			templateColumns(func(d *appsv1.DaemonSet) *corev1.PodSpec { return &d.Spec.Template.Spec }, func(d *appsv1.DaemonSet) *metav1.LabelSelector { return d.Spec.Selector })...)
	})
	register("apps", "v1", "controllerrevisions", func() []column {
		return []column{nameCol(),
			col("Controller", "string", 0, "Controller of the object", func(c *appsv1.ControllerRevision, _ time.Time) interface{} {
				if ref := metav1.GetControllerOf(c); ref != nil {
					gv := strings.SplitN(ref.APIVersion, "/", 2)[0]
					if !strings.Contains(ref.APIVersion, "/") {
						gv = ""
					}
					kind := strings.ToLower(ref.Kind)
					if gv != "" {
						kind += "." + gv
					}
					return kind + "/" + ref.Name
				}
				return none
			}),
			col("Revision", "integer", 0, "Revision is the revision number", func(c *appsv1.ControllerRevision, _ time.Time) interface{} { return c.Revision }),
			ageCol()}
	})
	register("batch", "v1", "jobs", func() []column {
		return append([]column{nameCol(),
			col("Status", "string", 0, "Status of the job.", func(j *batchv1.Job, _ time.Time) interface{} { return jobStatus(j) }),
			col("Completions", "string", 0, "The completion status of the job.", func(j *batchv1.Job, _ time.Time) interface{} {
				if j.Spec.Completions != nil {
					return fmt.Sprintf("%d/%d", j.Status.Succeeded, *j.Spec.Completions)
				}
				p := deref(j.Spec.Parallelism)
				if p > 1 {
					return fmt.Sprintf("%d/1 of %d", j.Status.Succeeded, p)
				}
				return fmt.Sprintf("%d/1", j.Status.Succeeded)
			}),
			col("Duration", "string", 0, "Time required to complete the job.", func(j *batchv1.Job, now time.Time) interface{} {
				switch {
				case j.Status.StartTime == nil:
					return ""
				case j.Status.CompletionTime == nil:
					return duration.HumanDuration(now.Sub(j.Status.StartTime.Time))
				}
				return duration.HumanDuration(j.Status.CompletionTime.Sub(j.Status.StartTime.Time))
			}),
			ageCol()},
			templateColumns(func(j *batchv1.Job) *corev1.PodSpec { return &j.Spec.Template.Spec }, func(j *batchv1.Job) *metav1.LabelSelector { return j.Spec.Selector })...)
	})
	register("batch", "v1", "cronjobs", func() []column {
		return append([]column{nameCol(),
			col("Schedule", "string", 0, "The schedule in Cron format.", func(c *batchv1.CronJob, _ time.Time) interface{} { return c.Spec.Schedule }),
			col("Timezone", "string", 0, "The timezone name for the given schedule.", func(c *batchv1.CronJob, _ time.Time) interface{} {
				if c.Spec.TimeZone == nil {
					return none
				}
				return *c.Spec.TimeZone
			}),
			col("Suspend", "boolean", 0, "This flag tells the controller to suspend subsequent executions.", func(c *batchv1.CronJob, _ time.Time) interface{} {
				return c.Spec.Suspend != nil && *c.Spec.Suspend
			}),
			col("Active", "integer", 0, "A list of pointers to currently running jobs.", func(c *batchv1.CronJob, _ time.Time) interface{} { return int64(len(c.Status.Active)) }),
			col("Last Schedule", "string", 0, "Information when was the last time the job was successfully scheduled.", func(c *batchv1.CronJob, now time.Time) interface{} {
				if c.Status.LastScheduleTime == nil {
					return none
				}
				return duration.HumanDuration(now.Sub(c.Status.LastScheduleTime.Time))
			}),
			ageCol()},
			templateColumns(func(c *batchv1.CronJob) *corev1.PodSpec { return &c.Spec.JobTemplate.Spec.Template.Spec }, func(c *batchv1.CronJob) *metav1.LabelSelector { return c.Spec.JobTemplate.Spec.Selector })...)
	})
	register("coordination.k8s.io", "v1", "leases", func() []column {
		return []column{nameCol(),
			col("Holder", "string", 0, "The holder of the lease.", func(l *coordinationv1.Lease, _ time.Time) interface{} {
				if l.Spec.HolderIdentity == nil {
					return ""
				}
				return *l.Spec.HolderIdentity
			}),
			ageCol()}
	})
	register("discovery.k8s.io", "v1", "endpointslices", func() []column {
		return []column{nameCol(),
			col("AddressType", "string", 0, "The IP protocol for this slice", func(e *discoveryv1.EndpointSlice, _ time.Time) interface{} { return string(e.AddressType) }),
			col("Ports", "string", 0, "The ports for this slice", func(e *discoveryv1.EndpointSlice, _ time.Time) interface{} {
				if len(e.Ports) == 0 {
					return "<unset>"
				}
				var ps []string
				for _, p := range e.Ports {
					if p.Port != nil {
						ps = append(ps, fmt.Sprint(*p.Port))
					}
				}
				return strings.Join(ps, ",")
			}),
			col("Endpoints", "string", 0, "First N endpoints for this slice", func(e *discoveryv1.EndpointSlice, _ time.Time) interface{} {
				var addrs []string
				n := 0
				for _, ep := range e.Endpoints {
					for _, a := range ep.Addresses {
						n++
						if len(addrs) < 3 {
							addrs = append(addrs, a)
						}
					}
				}
				if n == 0 {
					return "<unset>"
				}
				out := strings.Join(addrs, ",")
				if n > len(addrs) {
					out += fmt.Sprintf(" + %d more...", n-len(addrs))
				}
				return out
			}),
			ageCol()}
	})
	register("scheduling.k8s.io", "v1", "priorityclasses", func() []column {
		return []column{nameCol(),
			col("Value", "integer", 0, "The value of this priority class.", func(p *schedulingv1.PriorityClass, _ time.Time) interface{} { return int64(p.Value) }),
			col("Global-Default", "boolean", 0, "globalDefault specifies whether this PriorityClass should be considered as the default priority.", func(p *schedulingv1.PriorityClass, _ time.Time) interface{} {
				return p.GlobalDefault
			}),
			ageCol(),
			col("PreemptionPolicy", "string", 0, "PreemptionPolicy is the Policy for preempting pods with lower priority.", func(p *schedulingv1.PriorityClass, _ time.Time) interface{} {
				if p.PreemptionPolicy == nil {
					return ""
				}
				return string(*p.PreemptionPolicy)
			}),
		}
	})
	register("policy", "v1", "poddisruptionbudgets", func() []column {
		return []column{nameCol(),
			col("Min Available", "string", 0, "The minimum number of pods that must be available.", func(p *policyv1.PodDisruptionBudget, _ time.Time) interface{} {
				if p.Spec.MinAvailable == nil {
					return "N/A"
				}
				return p.Spec.MinAvailable.String()
			}),
			col("Max Unavailable", "string", 0, "The maximum number of pods that may be unavailable.", func(p *policyv1.PodDisruptionBudget, _ time.Time) interface{} {
				if p.Spec.MaxUnavailable == nil {
					return "N/A"
				}
				return p.Spec.MaxUnavailable.String()
			}),
			col("Allowed Disruptions", "integer", 0, "Calculated number of pods that may be disrupted at this time.", func(p *policyv1.PodDisruptionBudget, _ time.Time) interface{} {
				return int64(p.Status.DisruptionsAllowed)
			}),
			ageCol()}
	})
}

func jobStatus(j *batchv1.Job) string {
	for _, c := range j.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobComplete:
			return "Complete"
		case batchv1.JobFailed:
			return "Failed"
		case batchv1.JobSuspended:
			return "Suspended"
		case batchv1.JobFailureTarget:
			return "FailureTarget"
		case batchv1.JobSuccessCriteriaMet:
			return "SuccessCriteriaMet"
		}
	}
	if j.DeletionTimestamp != nil {
		return "Terminating"
	}
	return "Running"
}
