package storage

import (
	"errors"
	"fmt"
)

// Sentinel errors. Implementations wrap them with the key (use the helpers
// below) so callers can test with errors.Is and still see what failed.
var (
	// ErrNotFound: the key does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists: Create found the key already present.
	ErrExists = errors.New("already exists")
	// ErrConflict: a precondition (resourceVersion or UID) did not hold.
	ErrConflict = errors.New("conflict")
	// ErrExpired: the requested revision has been compacted away (HTTP 410).
	ErrExpired = errors.New("resource version expired")
	// ErrTooLargeResourceVersion: the requested revision is newer than the
	// store has seen (upstream answers 504 with a Retry-After; callers map it).
	ErrTooLargeResourceVersion = errors.New("too large resource version")
	// ErrInvalidContinue: a continue token could not be decoded.
	ErrInvalidContinue = errors.New("invalid continue token")
	// ErrInvalidResourceVersion: a resourceVersion string is not a number.
	ErrInvalidResourceVersion = errors.New("invalid resource version")
)

// KeyError carries the key an operation failed on.
type KeyError struct {
	Err error
	Key string
	Msg string // optional detail, e.g. the expected and actual revision
	// ResourceVersion is the store's current revision when it matters
	// (ErrExpired, ErrTooLargeResourceVersion).
	ResourceVersion int64
}

func (e *KeyError) Error() string {
	if e.Msg != "" {
		return fmt.Sprintf("%s: %v: %s", e.Key, e.Err, e.Msg)
	}
	return fmt.Sprintf("%s: %v", e.Key, e.Err)
}

func (e *KeyError) Unwrap() error { return e.Err }

// NewNotFound, NewExists, NewConflict build wrapped sentinel errors.
func NewNotFound(key string) error { return &KeyError{Err: ErrNotFound, Key: key} }
func NewExists(key string) error   { return &KeyError{Err: ErrExists, Key: key} }
func NewConflict(key, msg string) error {
	return &KeyError{Err: ErrConflict, Key: key, Msg: msg}
}
func NewExpired(key string, current int64) error {
	return &KeyError{Err: ErrExpired, Key: key, ResourceVersion: current}
}

// NewTooOldResourceVersion is ErrExpired for a watch from a revision older
// than the oldest one still served, worded as upstream's watch cache.
func NewTooOldResourceVersion(key string, requested, oldest, current int64) error {
	return &KeyError{Err: ErrExpired, Key: key, ResourceVersion: current,
		Msg: fmt.Sprintf("too old resource version: %d (%d)", requested, oldest)}
}

func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }
func IsExists(err error) bool   { return errors.Is(err, ErrExists) }
func IsConflict(err error) bool { return errors.Is(err, ErrConflict) }
func IsExpired(err error) bool  { return errors.Is(err, ErrExpired) }
