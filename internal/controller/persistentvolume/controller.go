package persistentvolume

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	listersstoragev1 "k8s.io/client-go/listers/storage/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/controller/localpath"
	"github.com/skiff-sh/skiff/internal/controller/metrics"
)

// Name is the controller's name in the manager and in events.
const Name = "persistentvolume-binder"

// resync is how often every unbound claim and unfinished volume is looked
// at again without an event, as upstream's 15 s sync period.
const resync = 15 * time.Second

// key is a claim (namespace and name) or a volume (name only).
type key struct {
	volume    bool
	namespace string
	name      string
}

func (k key) String() string {
	if k.volume {
		return "volume " + k.name
	}
	return "claim " + k.namespace + "/" + k.name
}

// Controller binds claims and volumes.
type Controller struct {
	client   kubernetes.Interface
	claims   listerscorev1.PersistentVolumeClaimLister
	volumes  listerscorev1.PersistentVolumeLister
	classes  listersstoragev1.StorageClassLister
	nodes    listerscorev1.NodeLister
	pods     listerscorev1.PodLister
	queue    workqueue.TypedRateLimitingInterface[key]
	recorder record.EventRecorder
	metrics  *metrics.Metrics
	log      *slog.Logger
	synced   []cache.InformerSynced
}

// New wires the controller to the shared informers.
func New(cc *controller.Context) (*Controller, error) {
	pvcInf := cc.Informers.Core().V1().PersistentVolumeClaims()
	pvInf := cc.Informers.Core().V1().PersistentVolumes()
	scInf := cc.Informers.Storage().V1().StorageClasses()
	nodeInf := cc.Informers.Core().V1().Nodes()
	podInf := cc.Informers.Core().V1().Pods()
	c := &Controller{
		client: cc.Client, claims: pvcInf.Lister(), volumes: pvInf.Lister(), classes: scInf.Lister(), nodes: nodeInf.Lister(), pods: podInf.Lister(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[key](),
			workqueue.TypedRateLimitingQueueConfig[key]{Name: "persistentvolume"}),
		recorder: cc.Recorder("persistentvolume-controller"),
		metrics:  cc.Metrics,
		log:      cc.Logger.With("controller", Name),
		synced: []cache.InformerSynced{pvcInf.Informer().HasSynced, pvInf.Informer().HasSynced,
			scInf.Informer().HasSynced, nodeInf.Informer().HasSynced, podInf.Informer().HasSynced},
	}
	claimEvent := func(obj any) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		if pvc, ok := obj.(*corev1.PersistentVolumeClaim); ok {
			c.queue.Add(key{namespace: pvc.Namespace, name: pvc.Name})
			if pvc.Spec.VolumeName != "" {
				c.queue.Add(key{volume: true, name: pvc.Spec.VolumeName})
			}
		}
	}
	volumeEvent := func(obj any) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		if pv, ok := obj.(*corev1.PersistentVolume); ok {
			c.queue.Add(key{volume: true, name: pv.Name})
			if r := pv.Spec.ClaimRef; r != nil {
				c.queue.Add(key{namespace: r.Namespace, name: r.Name})
			}
		}
	}
	if _, err := pvcInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: claimEvent, UpdateFunc: func(_, cur any) { claimEvent(cur) }, DeleteFunc: claimEvent,
	}); err != nil {
		return nil, err
	}
	if _, err := pvInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: volumeEvent, UpdateFunc: func(_, cur any) { volumeEvent(cur) }, DeleteFunc: volumeEvent,
	}); err != nil {
		return nil, err
	}
	// A new class may let pending claims provision.
	if _, err := scInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { c.enqueuePending() },
	}); err != nil {
		return nil, err
	}
	return c, nil
}

// Run binds until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) {
	go func() {
		t := time.NewTicker(resync)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				c.enqueuePending()
			}
		}
	}()
	controller.RunWorkers(ctx, c.queue, workers, c.synced, c.next)
}

// enqueuePending queues every unbound claim and every volume not in a
// final state.
func (c *Controller) enqueuePending() {
	claims, _ := c.claims.List(labels.Everything())
	for _, pvc := range claims {
		if pvc.Status.Phase != corev1.ClaimBound {
			c.queue.Add(key{namespace: pvc.Namespace, name: pvc.Name})
		}
	}
	volumes, _ := c.volumes.List(labels.Everything())
	for _, pv := range volumes {
		if pv.Status.Phase != corev1.VolumeBound && pv.Status.Phase != corev1.VolumeAvailable {
			c.queue.Add(key{volume: true, name: pv.Name})
		}
	}
}

func (c *Controller) next(ctx context.Context) bool {
	return controller.ProcessNext(ctx, c.queue, Name, c.metrics, c.log, controller.NoResult(c.sync))
}

func (c *Controller) sync(ctx context.Context, k key) error {
	if k.volume {
		return c.syncVolume(ctx, k.name)
	}
	return c.syncClaim(ctx, k.namespace, k.name)
}

// syncClaim binds, provisions for or reports on one claim.
func (c *Controller) syncClaim(ctx context.Context, ns, name string) error {
	claim, err := c.claims.PersistentVolumeClaims(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if claim.DeletionTimestamp != nil {
		return nil
	}
	if claim.Spec.VolumeName != "" {
		return c.syncBoundClaim(ctx, claim)
	}
	var class *storagev1.StorageClass
	if cn := ClaimClass(claim); cn != "" {
		class, err = c.classes.Get(cn)
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	delayed := class != nil && class.VolumeBindingMode != nil && *class.VolumeBindingMode == storagev1.VolumeBindingWaitForFirstConsumer
	var node *corev1.Node
	if delayed {
		sel := claim.Annotations[AnnSelectedNode]
		if sel == "" {
			c.recorder.Event(claim, corev1.EventTypeNormal, "WaitForFirstConsumer", "waiting for first consumer to be created before binding")
			return nil
		}
		if node, err = c.nodes.Get(sel); err != nil {
			if apierrors.IsNotFound(err) {
				c.recorder.Eventf(claim, corev1.EventTypeWarning, "ProvisioningFailed", "selected node %q not found", sel)
				return nil
			}
			return err
		}
	}
	volumes, err := c.volumes.List(labels.Everything())
	if err != nil {
		return err
	}
	if pv := FindBestMatch(claim, volumes, node); pv != nil {
		return c.bind(ctx, pv, claim)
	}
	switch {
	case ClaimClass(claim) == "":
		c.recorder.Event(claim, corev1.EventTypeNormal, "FailedBinding", "no persistent volumes available for this claim and no storage class is set")
	case class == nil:
		c.recorder.Eventf(claim, corev1.EventTypeWarning, "ProvisioningFailed", "storageclass.storage.k8s.io %q not found", ClaimClass(claim))
	case class.Provisioner == localpath.Provisioner:
		return c.provision(ctx, claim, class, node)
	default:
		return c.waitExternal(ctx, claim, class)
	}
	return nil
}

// provision creates the local-path volume of claim on node; the volume,
// pre-bound to the claim, is bound on its informer event.
func (c *Controller) provision(ctx context.Context, claim *corev1.PersistentVolumeClaim, class *storagev1.StorageClass, node *corev1.Node) error {
	if node == nil {
		c.recorder.Event(claim, corev1.EventTypeWarning, "ProvisioningFailed",
			"failed to provision volume with StorageClass \""+class.Name+"\": configuration error, no node was specified")
		return nil
	}
	if _, err := c.volumes.Get(localpath.VolumeName(claim)); err == nil {
		return nil // made already; waiting for the informer to bind it
	}
	pv, err := localpath.Provision(claim, class, node)
	if err != nil {
		c.recorder.Eventf(claim, corev1.EventTypeWarning, "ProvisioningFailed", "failed to provision volume with StorageClass %q: %v", class.Name, err)
		return nil
	}
	c.recorder.Eventf(claim, corev1.EventTypeNormal, "Provisioning", "External provisioner is provisioning volume for claim \"%s/%s\"", claim.Namespace, claim.Name)
	if _, err := c.client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		c.recorder.Eventf(claim, corev1.EventTypeWarning, "ProvisioningFailed", "failed to provision volume with StorageClass %q: %v", class.Name, err)
		return fmt.Errorf("create volume %s: %w", pv.Name, err)
	}
	c.recorder.Eventf(claim, corev1.EventTypeNormal, "ProvisioningSucceeded", "Successfully provisioned volume %s", pv.Name)
	return nil
}

// waitExternal marks a claim for an external provisioner, as upstream.
func (c *Controller) waitExternal(ctx context.Context, claim *corev1.PersistentVolumeClaim, class *storagev1.StorageClass) error {
	if claim.Annotations[AnnStorageProvisioner] != class.Provisioner {
		cp := claim.DeepCopy()
		if cp.Annotations == nil {
			cp.Annotations = map[string]string{}
		}
		cp.Annotations[AnnStorageProvisioner] = class.Provisioner
		cp.Annotations[AnnBetaStorageProvisioner] = class.Provisioner
		if _, err := c.client.CoreV1().PersistentVolumeClaims(cp.Namespace).Update(ctx, cp, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("annotate claim %s/%s: %w", cp.Namespace, cp.Name, err)
		}
	}
	c.recorder.Eventf(claim, corev1.EventTypeNormal, "ExternalProvisioning",
		"Waiting for a volume to be created either by the external provisioner '%s' or manually by the system administrator. If volume creation is delayed, please verify that the provisioner is running and correctly registered.", class.Provisioner)
	return nil
}

// syncBoundClaim handles a claim that names its volume: a user's
// pre-binding to a free volume, a binding to finish, or a lost volume.
func (c *Controller) syncBoundClaim(ctx context.Context, claim *corev1.PersistentVolumeClaim) error {
	pv, err := c.volumes.Get(claim.Spec.VolumeName)
	if apierrors.IsNotFound(err) {
		pv, err = c.client.CoreV1().PersistentVolumes().Get(ctx, claim.Spec.VolumeName, metav1.GetOptions{})
	}
	if apierrors.IsNotFound(err) {
		if claim.Status.Phase == corev1.ClaimBound || claim.Status.Phase == corev1.ClaimLost {
			return c.setClaimPhase(ctx, claim, corev1.ClaimLost, corev1.EventTypeWarning, "ClaimLost", "Bound claim has lost its PersistentVolume. Data on the volume is lost!")
		}
		c.recorder.Eventf(claim, corev1.EventTypeNormal, "FailedBinding", "volume %q requested and not found", claim.Spec.VolumeName)
		return nil
	}
	if err != nil {
		return err
	}
	switch {
	case pv.Spec.ClaimRef == nil:
		if why := Mismatch(pv, claim); why != "" {
			c.recorder.Eventf(claim, corev1.EventTypeWarning, "VolumeMismatch", "Cannot bind to requested volume %q: %s", pv.Name, why)
			return nil
		}
		return c.bind(ctx, pv, claim)
	case BoundToClaim(pv, claim):
		return c.bind(ctx, pv, claim)
	default:
		if claim.Status.Phase == corev1.ClaimBound {
			return c.setClaimPhase(ctx, claim, corev1.ClaimLost, corev1.EventTypeWarning, "ClaimMisbound", "Two claims are bound to the same volume, this one is bound incorrectly")
		}
		c.recorder.Eventf(claim, corev1.EventTypeWarning, "FailedBinding", "volume %q already bound to a different claim.", pv.Name)
		return nil
	}
}

func (c *Controller) setClaimPhase(ctx context.Context, claim *corev1.PersistentVolumeClaim, phase corev1.PersistentVolumeClaimPhase, typ, reason, msg string) error {
	if claim.Status.Phase == phase {
		return nil
	}
	cp := claim.DeepCopy()
	cp.Status.Phase = phase
	if _, err := c.client.CoreV1().PersistentVolumeClaims(cp.Namespace).UpdateStatus(ctx, cp, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("claim %s/%s phase %s: %w", cp.Namespace, cp.Name, phase, err)
	}
	c.recorder.Event(claim, typ, reason, msg)
	return nil
}

// bind writes both sides of a binding in upstream's order: the volume's
// claimRef, the volume's phase, the claim's volumeName and annotations,
// the claim's status. Each step is skipped when already done, so a failed
// bind resumes where it stopped.
func (c *Controller) bind(ctx context.Context, pv *corev1.PersistentVolume, claim *corev1.PersistentVolumeClaim) error {
	vols := c.client.CoreV1().PersistentVolumes()
	if r := pv.Spec.ClaimRef; r == nil || r.UID != claim.UID || r.Name != claim.Name || r.Namespace != claim.Namespace {
		cp := pv.DeepCopy()
		if r == nil {
			if cp.Annotations == nil {
				cp.Annotations = map[string]string{}
			}
			cp.Annotations[AnnBoundByController] = "yes"
		}
		cp.Spec.ClaimRef = &corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1", Namespace: claim.Namespace,
			Name: claim.Name, UID: claim.UID, ResourceVersion: claim.ResourceVersion}
		updated, err := vols.Update(ctx, cp, metav1.UpdateOptions{})
		if err != nil {
			return fmt.Errorf("bind volume %s to claim %s/%s: %w", pv.Name, claim.Namespace, claim.Name, err)
		}
		pv = updated
	}
	if pv.Status.Phase != corev1.VolumeBound {
		cp := pv.DeepCopy()
		cp.Status.Phase, cp.Status.Message, cp.Status.Reason = corev1.VolumeBound, "", ""
		updated, err := vols.UpdateStatus(ctx, cp, metav1.UpdateOptions{})
		if err != nil {
			return fmt.Errorf("volume %s phase Bound: %w", pv.Name, err)
		}
		pv = updated
	}
	claims := c.client.CoreV1().PersistentVolumeClaims(claim.Namespace)
	if claim.Spec.VolumeName != pv.Name || claim.Annotations[AnnBindCompleted] != "yes" {
		cp := claim.DeepCopy()
		if cp.Annotations == nil {
			cp.Annotations = map[string]string{}
		}
		if cp.Spec.VolumeName != pv.Name {
			cp.Spec.VolumeName = pv.Name
			cp.Annotations[AnnBoundByController] = "yes"
		}
		cp.Annotations[AnnBindCompleted] = "yes"
		updated, err := claims.Update(ctx, cp, metav1.UpdateOptions{})
		if err != nil {
			return fmt.Errorf("bind claim %s/%s to volume %s: %w", claim.Namespace, claim.Name, pv.Name, err)
		}
		claim = updated
	}
	if claim.Status.Phase != corev1.ClaimBound || !claim.Status.Capacity.Storage().Equal(*pv.Spec.Capacity.Storage()) || len(claim.Status.AccessModes) == 0 {
		cp := claim.DeepCopy()
		cp.Status.Phase = corev1.ClaimBound
		cp.Status.Capacity = pv.Spec.Capacity.DeepCopy()
		cp.Status.AccessModes = pv.Spec.AccessModes
		if _, err := claims.UpdateStatus(ctx, cp, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("claim %s/%s phase Bound: %w", claim.Namespace, claim.Name, err)
		}
		c.log.Info("bound claim", "claim", claim.Namespace+"/"+claim.Name, "volume", pv.Name)
	}
	return nil
}

// syncVolume keeps a volume's phase in step with its claim and reclaims
// a released volume.
func (c *Controller) syncVolume(ctx context.Context, name string) error {
	pv, err := c.volumes.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if pv.DeletionTimestamp != nil {
		return nil // waiting for its finalizers (a node removing local-path data)
	}
	r := pv.Spec.ClaimRef
	if r == nil || r.UID == "" {
		if r != nil {
			c.queue.Add(key{namespace: r.Namespace, name: r.Name})
		}
		return c.setVolumePhase(ctx, pv, corev1.VolumeAvailable, "")
	}
	claim, err := c.claims.PersistentVolumeClaims(r.Namespace).Get(r.Name)
	if apierrors.IsNotFound(err) {
		// The cache may lag a claim created a moment ago.
		claim, err = c.client.CoreV1().PersistentVolumeClaims(r.Namespace).Get(ctx, r.Name, metav1.GetOptions{})
	}
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	if err == nil && claim.UID == r.UID {
		switch claim.Spec.VolumeName {
		case "":
			c.queue.Add(key{namespace: claim.Namespace, name: claim.Name}) // binding in progress
			return nil
		case pv.Name:
			return c.setVolumePhase(ctx, pv, corev1.VolumeBound, "")
		default:
			// The claim went to another volume: free this one if the
			// controller bound it.
			if pv.Annotations[AnnBoundByController] == "yes" {
				cp := pv.DeepCopy()
				cp.Spec.ClaimRef = nil
				delete(cp.Annotations, AnnBoundByController)
				if _, err := c.client.CoreV1().PersistentVolumes().Update(ctx, cp, metav1.UpdateOptions{}); err != nil {
					return fmt.Errorf("unbind volume %s: %w", pv.Name, err)
				}
			}
			return nil
		}
	}
	// The claim is gone.
	if pv.Status.Phase != corev1.VolumeReleased && pv.Status.Phase != corev1.VolumeFailed {
		if err := c.setVolumePhase(ctx, pv, corev1.VolumeReleased, ""); err != nil {
			return err
		}
	}
	return c.reclaim(ctx, pv)
}

// reclaim applies a released volume's reclaim policy.
func (c *Controller) reclaim(ctx context.Context, pv *corev1.PersistentVolume) error {
	switch pv.Spec.PersistentVolumeReclaimPolicy {
	case corev1.PersistentVolumeReclaimRetain:
		return nil
	case corev1.PersistentVolumeReclaimDelete:
		prov := pv.Annotations[localpath.ProvisionedByAnnotation]
		switch {
		case prov == localpath.Provisioner:
			// Without pvc-protection a claim can go while pods still
			// use it: keep its data until they are done.
			if pod := c.podUsing(pv.Spec.ClaimRef.Namespace, pv.Spec.ClaimRef.Name); pod != "" {
				c.log.Debug("released volume still in use", "volume", pv.Name, "pod", pod)
				c.queue.AddAfter(key{volume: true, name: pv.Name}, inUseRetry)
				return nil
			}
			err := c.client.CoreV1().PersistentVolumes().Delete(ctx, pv.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &pv.UID}})
			if err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("delete released volume %s: %w", pv.Name, err)
			}
			c.log.Info("deleted released volume", "volume", pv.Name)
			return nil
		case prov != "":
			return nil // an external provisioner deletes its volumes
		}
		msg := fmt.Sprintf("error getting deleter volume plugin for volume %q: no deletable volume plugin matched", pv.Name)
		if pv.Status.Phase != corev1.VolumeFailed {
			c.recorder.Event(pv, corev1.EventTypeWarning, "VolumeFailedDelete", msg)
		}
		return c.setVolumePhase(ctx, pv, corev1.VolumeFailed, msg)
	default:
		msg := "No recycler plugin found for the volume!"
		if pv.Status.Phase != corev1.VolumeFailed {
			c.recorder.Event(pv, corev1.EventTypeWarning, "VolumeFailedRecycle", msg)
		}
		return c.setVolumePhase(ctx, pv, corev1.VolumeFailed, msg)
	}
}

func (c *Controller) setVolumePhase(ctx context.Context, pv *corev1.PersistentVolume, phase corev1.PersistentVolumePhase, msg string) error {
	if pv.Status.Phase == phase && pv.Status.Message == msg {
		return nil
	}
	cp := pv.DeepCopy()
	cp.Status.Phase, cp.Status.Message = phase, msg
	now := metav1.Now()
	cp.Status.LastPhaseTransitionTime = &now
	if _, err := c.client.CoreV1().PersistentVolumes().UpdateStatus(ctx, cp, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("volume %s phase %s: %w", pv.Name, phase, err)
	}
	return nil
}

// inUseRetry is how often a released volume still mounted by a pod is
// looked at again.
const inUseRetry = 2 * time.Second

// podUsing names a pod of ns that is not finished and uses claim, "" when
// none does.
func (c *Controller) podUsing(ns, claim string) string {
	pods, err := c.pods.Pods(ns).List(labels.Everything())
	if err != nil {
		return ""
	}
	for _, p := range pods {
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		for _, v := range p.Spec.Volumes {
			if v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == claim {
				return p.Name
			}
		}
	}
	return ""
}
