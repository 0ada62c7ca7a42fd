// Package serviceaccount makes sure every active namespace has the
// "default" ServiceAccount, re-creating it when it is deleted.
package serviceaccount
