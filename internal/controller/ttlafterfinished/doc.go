// Package ttlafterfinished deletes finished Jobs (Complete or Failed) once
// spec.ttlSecondsAfterFinished has passed since they finished, with
// Background propagation so the garbage collector removes their pods. It
// re-reads the Job from the API before deleting, so a TTL changed at the
// last moment is honoured. It deletes nothing else.
package ttlafterfinished
