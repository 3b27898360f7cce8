package stream

import (
	"crypto/cipher"
	"runtime"
	"sync"
	"sync/atomic"
)

// The pipelined paths, Writer.ReadFrom and Reader.WriteTo, share this
// plumbing: a few workers, each with a job buffer of its own, take turns
// to read, and take turns in the same order to write. Each worker reads
// a job (up to chunksPerJob chunks, framed in order under its read
// turn), seals or opens it and digests its chunks while they are in its
// core's cache, then writes it when its write turn comes. The turns go
// round the workers in a ring, so the output is in order, one hand-off
// passes each turn, and a job's bytes stay on one core from the read to
// the write. Every goroutine is joined before the pipelined method
// returns.
//
// Measured on 2 cores against the design before it (a reader goroutine,
// the workers and a writer goroutine joined by queues, five jobs in
// flight): the ring is as fast for signed envelopes, whose SHA-256 keeps
// both cores busy, and 10-20% slower for anonymous ones, and it needs two
// job buffers instead of five, which keeps the peak RSS of a 10 GiB run
// within about 1 MiB of a 1 KiB one.

// chunksPerJob is the number of chunks a job holds: 256 KiB, one read
// and one write call each on the open side, and a few reads and one
// write on the seal side. Bigger jobs mean fewer system calls and
// hand-offs per byte; smaller ones, less memory (two chunks were 5-15%
// slower, eight no faster). A job fits easily in a core's L2 cache.
const chunksPerJob = 4

// jobBufSize holds chunksPerJob sealed chunks and, for a Reader, the
// look-ahead past them: up to a trailer and one byte.
const jobBufSize = chunksPerJob*EncChunkSize + MaxTrailer + 1

// maxWorkers bounds the workers: past a few cores the file system, not
// the AEAD and the digests, is the limit.
const maxWorkers = 8

// workerCount is one worker per CPU. Measured on 2 cores (1 GiB, page
// cache): a third worker made every case slower (more hand-offs for no
// more CPU), and each worker's buffer shows in the peak RSS.
func workerCount() int { return min(runtime.GOMAXPROCS(0), maxWorkers) }

// job is up to chunksPerJob chunks on their way through a pipeline.
// Chunk i sits at buf[i*EncChunkSize:], lens[i] bytes long (ciphertext
// and tag on the wire side); out is what the Reader's sink writes.
type job struct {
	buf     []byte // jobBufSize
	k       int    // chunks in the job
	lens    [chunksPerJob]int
	nonces  [chunksPerJob]nonce
	digests [chunksPerJob][32]byte
	out     []byte
	err     error // stops the job before its worker processes it, or set by the worker
	ferr    error // the source's framing error, reported after the job's chunks
}

func (j *job) reset() {
	j.k, j.out, j.err, j.ferr = 0, nil, nil, nil
}

// final reports whether the job holds the payload's last chunk.
func (j *job) final() bool { return j.k > 0 && j.nonces[j.k-1].last() }

// chunk returns chunk i as the job holds it.
func (j *job) chunk(i int) []byte {
	return j.buf[i*EncChunkSize : i*EncChunkSize+j.lens[i]]
}

// freeJobs recycles jobs and their buffers across pipelines and serial
// readers, so that opening many small envelopes in one process, or one
// envelope twice (a spooled one), does not allocate and clear a buffer
// each time. Unlike a sync.Pool it survives garbage collections: a new
// buffer for every pass would add to the peak RSS what the old one still
// holds. It keeps at most one job per worker and one more.
var freeJobs = make(chan *job, maxWorkers+1)

func getJob() *job {
	select {
	case j := <-freeJobs:
		j.reset()
		return j
	default:
		return &job{buf: make([]byte, jobBufSize)}
	}
}

func putJob(j *job) {
	j.reset()
	select {
	case freeJobs <- j:
	default:
	}
}

// worker is a pipeline worker's own AEAD and chunk hasher: nothing is
// shared between workers.
type worker struct {
	a cipher.AEAD
	h *chunkHasher
}

// stages are what a pipeline does with each job. read runs under the
// read turn, in stream order: it fills the job and returns false when
// nothing is left to read after it (the input ended or failed). process
// runs on the worker's own state (made from key), outside the turns, and
// is skipped for a job with an error or no chunks. write runs under the
// write turn, in stream order; an error from it, io.EOF included, stops
// the pipeline.
type stages struct {
	key     []byte // checked already by NewReader or NewWriter
	read    func(*job) (more bool)
	process func(*worker, *job)
	write   func(*job) error
}

// run runs the pipeline until read has nothing more or write fails, and
// returns write's first error (nil when read ran out and every job was
// written).
func run(s stages) error {
	n := workerCount()
	readTurn := make([]chan struct{}, n)
	writeTurn := make([]chan struct{}, n)
	for i := range n {
		readTurn[i] = make(chan struct{}, 1)
		writeTurn[i] = make(chan struct{}, 1)
	}
	readTurn[0] <- struct{}{}
	writeTurn[0] <- struct{}{}
	var (
		ended  bool        // under the read turn: nothing more to read
		halted atomic.Bool // a write failed or ended the stream
		first  error       // under the write turn
		wg     sync.WaitGroup
	)
	for i := range n {
		next := (i + 1) % n
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, _ := newAEAD(s.key)
			w := &worker{a: a, h: newChunkHasher()}
			j := getJob()
			defer putJob(j)
			for {
				<-readTurn[i]
				if ended || halted.Load() {
					ended = true
					readTurn[next] <- struct{}{}
					return
				}
				j.reset()
				more := s.read(j)
				ended = !more
				readTurn[next] <- struct{}{}
				if j.err == nil && j.k > 0 {
					s.process(w, j)
				}
				<-writeTurn[i]
				if !halted.Load() {
					if err := s.write(j); err != nil {
						first = err
						halted.Store(true)
					}
				}
				writeTurn[next] <- struct{}{}
				if !more {
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}
