// Package checkpoint defines the checkpoint store contract (per lane: the
// committed position, the open intent and the operator state saved with the
// commit) and the embedded file store that is the default for one process.
//
// The delivery protocol is: PutIntent before a sink writes anything, Commit
// after every sink acknowledged. A lane that has an open intent on start is
// redone over exactly that range first.
package checkpoint
