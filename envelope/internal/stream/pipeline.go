package stream

import (
	"runtime"
	"sync"
)

// The pipelined paths, Writer.ReadFrom and Reader.WriteTo, share this
// plumbing. A source goroutine fills jobs (each up to chunksPerJob
// chunks in one buffer, read with one call where the input allows) and
// hands each to the workers and, in the same order, to the sink, which
// runs in the caller's goroutine: it waits for each job to be done and
// writes it, so the output is in order whatever order the workers finish
// in. A fixed set of jobs is reused in place (no allocation per chunk),
// and every goroutine is joined before the pipelined method returns.

// chunksPerJob is the number of chunks a job holds. Bigger jobs mean
// fewer system calls and goroutine hand-offs per byte; smaller ones,
// less memory. Four (256 KiB) is where the hand-offs stop showing in
// profiles (see BenchmarkPipelineJobs).
const chunksPerJob = 4

// jobBufSize holds chunksPerJob sealed chunks and, for a Reader, the
// look-ahead past them: up to a trailer and one byte.
const jobBufSize = chunksPerJob*EncChunkSize + MaxTrailer + 1

// maxWorkers bounds the AEAD workers: past a few cores the file system,
// not the AEAD, is the limit.
const maxWorkers = 8

func workerCount() int { return min(runtime.GOMAXPROCS(0), maxWorkers) }

// job is up to chunksPerJob chunks on their way through a pipeline.
// Chunk i sits at buf[i*EncChunkSize:], lens[i] bytes long (ciphertext
// and tag on the wire side); out is what the sink writes.
type job struct {
	buf     []byte // jobBufSize
	k       int    // chunks in the job
	lens    [chunksPerJob]int
	nonces  [chunksPerJob]nonce
	digests [chunksPerJob][32]byte
	out     []byte
	err     error         // stops the job: set before a worker (by pre) or by one
	ferr    error         // the source's framing error after the job's chunks
	done    chan struct{} // a worker signals when it is through with the job
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

// jobPool recycles jobs and their buffers across pipelines and serial
// readers, so that opening many small envelopes in one process does not
// allocate and clear 256 KiB each time.
var jobPool = sync.Pool{New: func() any {
	return &job{buf: make([]byte, jobBufSize), done: make(chan struct{}, 1)}
}}

func getJob() *job {
	j := jobPool.Get().(*job)
	j.reset()
	return j
}

func putJob(j *job) {
	j.reset()
	jobPool.Put(j)
}

// pipeline is the plumbing: free jobs, the workers' queue, the sink's
// queue in stream order, and a stop signal.
type pipeline struct {
	free    chan *job
	work    chan *job
	ordered chan *job
	stop    chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
}

// newPipeline starts workers goroutines, each running process on the
// jobs it is given, with a state of its own made by newWorker (an AEAD
// and a chunk hasher: nothing is shared between workers).
func newPipeline[W any](workers int, newWorker func() W, process func(W, *job)) *pipeline {
	n := workers + 3 // one being read, one being written, one spare
	p := &pipeline{
		free:    make(chan *job, n),
		work:    make(chan *job, n),
		ordered: make(chan *job, n),
		stop:    make(chan struct{}),
	}
	for range n {
		p.free <- getJob()
	}
	for range workers {
		w := newWorker()
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for j := range p.work {
				if j.err == nil {
					process(w, j)
				}
				j.done <- struct{}{}
			}
		}()
	}
	return p
}

// get returns a free job, or nil once the pipeline is halted.
func (p *pipeline) get() *job {
	select {
	case j := <-p.free:
		j.reset()
		return j
	case <-p.stop:
		return nil
	}
}

// send hands a filled job to the workers and to the sink.
func (p *pipeline) send(j *job) {
	p.work <- j
	p.ordered <- j
}

// recycle returns a job the source did not send.
func (p *pipeline) recycle(j *job) { p.free <- j }

// halt tells the source to stop; what is in flight drains.
func (p *pipeline) halt() { p.once.Do(func() { close(p.stop) }) }

// source runs fill in a goroutine of its own; fill sends jobs with
// p.send until it returns. pre, when not nil, runs on each job in order
// in another goroutine before the workers get it (the version 1 payload
// hash, which must see the ciphertext in order and before it is
// decrypted in place).
func (p *pipeline) source(fill func(send func(*job)), pre func(*job)) {
	send := p.send
	var hand chan *job
	if pre != nil {
		hand = make(chan *job, cap(p.free))
		send = func(j *job) { hand <- j }
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer close(p.work)
			defer close(p.ordered)
			for j := range hand {
				if j.err == nil {
					pre(j)
				}
				p.send(j)
			}
		}()
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		if hand != nil {
			defer close(hand)
		} else {
			defer close(p.work)
			defer close(p.ordered)
		}
		fill(send)
	}()
}

// sink runs write on every job in stream order, once its worker is
// through with it, and recycles it; after the first error it only
// drains. It returns the first error.
func (p *pipeline) sink(write func(*job) error) error {
	var err error
	for j := range p.ordered {
		<-j.done
		if err == nil {
			if err = write(j); err != nil {
				p.halt()
			}
		}
		p.free <- j
	}
	return err
}

// close waits for every goroutine and returns the jobs to the pool.
func (p *pipeline) close() {
	p.wg.Wait()
	for {
		select {
		case j := <-p.free:
			putJob(j)
		default:
			return
		}
	}
}
