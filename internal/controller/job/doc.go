// Package job runs batch/v1 Jobs: it creates pods from the template up to
// parallelism until completions pods succeeded (NonIndexed or Indexed),
// counts every finished pod exactly once through the
// batch.kubernetes.io/job-tracking finalizer and
// status.uncountedTerminatedPods, recreates failed pods after an
// exponential back-off, applies backoffLimit, activeDeadlineSeconds,
// podFailurePolicy and suspend, and reports conditions as upstream does
// (FailureTarget before Failed, SuccessCriteriaMet before Complete).
//
// It writes only through the API. It does not delete finished Jobs; that
// is the ttlafterfinished controller's job.
package job
