package receive

// MaxBatch is maxBatch, for the tests of the reorder bound.
const MaxBatch = maxBatch
