package main

import (
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"
)

var flagQuiet = &cli.BoolFlag{
	Name:    "quiet",
	Aliases: []string{"q"},
	Usage:   "show no progress bar",
	EnvVars: []string{"TOKENSEAL_QUIET"},
}

const (
	// progressThreshold is the smallest stream that gets a progress bar.
	// A stream of unknown size gets one once this much has gone by.
	progressThreshold = 4 << 20
	// progressInterval is how often the bar is redrawn.
	progressInterval = 100 * time.Millisecond
)

// showProgress is the rule for a progress bar: stderr is a terminal, no
// --quiet, and the input is at least progressThreshold bytes or of
// unknown size (size < 0).
func showProgress(quiet, terminal bool, size int64) bool {
	return !quiet && terminal && (size < 0 || size >= progressThreshold)
}

// progress draws a progress bar on stderr for a stream: bytes, rate and,
// when the size is known, percentage and time left.
//
// The stream is counted by Reader, which costs an atomic add per Read; a
// goroutine started by Start reads the count and redraws at most every
// progressInterval, so the bar never slows the stream or defeats the
// pipelined ReadFrom/WriteTo paths (wrap the source, not the sink). Start
// is separate from creation so that a PIN prompt on the terminal comes
// before the first draw. A nil *progress is valid and does nothing: its
// Reader returns the reader given.
//
// Use:
//
//	p := newProgress(c, "sealing", size)
//	defer p.Stop()
//	src = p.Reader(src)
//	... prompt for a PIN, parse headers ...
//	p.Start()
//	... stream ...
//	p.Finish()
type progress struct {
	w     io.Writer
	desc  string
	n     atomic.Int64 // bytes read so far
	total atomic.Int64 // bytes expected; < 0 unknown

	mu      sync.Mutex
	started bool
	ended   bool
	stop    chan struct{}
	done    chan struct{}

	bar   *progressbar.ProgressBar // owned by run, then by end
	max   int64
	shown bool // drawn at least once
}

// newProgress returns a progress bar for a stream of size bytes (-1 when
// unknown), or nil when none should be shown (see showProgress).
func newProgress(c *cli.Context, desc string, size int64) *progress {
	if !showProgress(c.Bool("quiet"), isTTY(c.App.ErrWriter), size) {
		return nil
	}
	return newProgressTo(c.App.ErrWriter, desc, size)
}

func newProgressTo(w io.Writer, desc string, size int64) *progress {
	p := &progress{w: w, desc: desc, stop: make(chan struct{}), done: make(chan struct{})}
	p.total.Store(size)
	return p
}

// inputSize is the size of the input IN ("" or "-": stdin) when it is a
// regular file, else -1.
func inputSize(stdin io.Reader, path string) int64 {
	var fi os.FileInfo
	var err error
	if path == "" || path == "-" {
		f, ok := stdin.(*os.File)
		if !ok {
			return -1
		}
		fi, err = f.Stat()
	} else {
		fi, err = os.Stat(path)
	}
	if err != nil || !fi.Mode().IsRegular() {
		return -1
	}
	return fi.Size()
}

// Reader returns r counting into the bar. Several readers may count into
// one bar concurrently.
func (p *progress) Reader(r io.Reader) io.Reader {
	if p == nil {
		return r
	}
	return &countingReader{r: r, n: &p.n}
}

// AddTotal adds n bytes to the size expected, for a stream read twice.
func (p *progress) AddTotal(n int64) {
	if p != nil && p.total.Load() >= 0 {
		p.total.Add(n)
	}
}

// Start begins drawing. It may be called more than once.
func (p *progress) Start() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.started && !p.ended {
		p.started = true
		go p.run()
	}
}

// Finish draws the bar complete and ends its line. Calling Stop after it
// (say, deferred) does nothing.
func (p *progress) Finish() { p.end(true) }

// Stop stops drawing and erases the bar, so that an error message starts
// on a clean line. It does nothing after Finish.
func (p *progress) Stop() { p.end(false) }

func (p *progress) end(ok bool) {
	if p == nil {
		return
	}
	p.mu.Lock()
	started, ended := p.started, p.ended
	p.ended = true
	p.mu.Unlock()
	if !started || ended {
		return
	}
	close(p.stop)
	<-p.done
	if !p.shown {
		return // done before anything was drawn
	}
	if ok {
		p.draw()
		p.bar.Finish() // the final line, then a newline
	} else {
		p.bar.Clear()
	}
}

func (p *progress) run() {
	defer close(p.done)
	total := p.total.Load()
	p.max = total
	p.bar = progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(p.w),
		progressbar.OptionSetDescription(p.desc),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowTotalBytes(true),
		progressbar.OptionSetWidth(25),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionThrottle(progressInterval),
		progressbar.OptionShowCount(), // redraw on every update, throttled
		progressbar.OptionSpinnerType(14),
		// No spinner goroutine of the library's own: run draws.
		progressbar.OptionSetSpinnerChangeInterval(0),
		progressbar.OptionUseANSICodes(true),
		progressbar.OptionOnCompletion(func() { io.WriteString(p.w, "\n") }),
	)
	// The clock for rate and time left starts now, not at the first draw.
	p.bar.StartWithoutRender()
	t := time.NewTicker(progressInterval)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.draw()
		}
	}
}

// draw updates the bar from the count. A stream of unknown size shows
// nothing until progressThreshold bytes have gone by.
func (p *progress) draw() {
	n, total := p.n.Load(), p.total.Load()
	if !p.shown && total < 0 && n < progressThreshold {
		return
	}
	p.shown = true
	if total >= 0 && (total != p.max || n > p.max) {
		// A second pass was announced, or the input grew.
		p.max = max(total, n)
		p.bar.ChangeMax64(p.max)
	}
	p.bar.Set64(n)
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n.Add(int64(n))
	return n, err
}
