// Package cronjob creates the Jobs of batch/v1 CronJobs: one Job per
// schedule time, named <cronjob>-<scheduled time in minutes since the
// epoch> (so a retried create cannot make a second one), honouring
// timeZone, startingDeadlineSeconds, concurrencyPolicy, suspend and the
// history limits. It requeues each CronJob for its next schedule time
// instead of polling. Time comes from an injected clock.
//
// It creates and deletes Jobs only; the job controller runs them.
package cronjob
