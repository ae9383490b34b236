// Package pipeline is the runtime that connects a source, the transform
// program, the micro-batch window and the sinks, and carries out the
// delivery protocol of DESIGN.md for every lane:
//
//  1. the window closes a batch: a contiguous position range [from, to];
//  2. the intent {pipeline, lane, from, to} is persisted in the checkpoint store;
//  3. every sink (the main sink and the dead letter) writes the batch under
//     names derived from the intent;
//  4. the lane is committed at to, which clears the intent.
//
// On start, a lane with an open intent re-reads exactly [from, to] and
// redoes that batch first.
//
// Goroutines: Run starts, and waits for, one goroutine for the source, a
// pool of decode workers, and per lane a splitter (cuts the lane's records
// into window-sized segments), an assembler (joins decoded segments in
// order into a batch) and a flusher (intent → write → commit, one batch at
// a time). Every channel between them is bounded, so a fast source is
// slowed down rather than buffered without limit.
package pipeline
