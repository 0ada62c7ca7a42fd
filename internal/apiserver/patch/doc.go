// Package patch applies JSON patches, JSON merge patches and strategic
// merge patches to an object's JSON, with upstream's limits and error
// codes. It knows nothing about storage or HTTP.
package patch
