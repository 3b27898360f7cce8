package state

import "time"

// Window is the ledger's memory of one (sender key, stream): the highest
// accepted serial (0: nothing accepted yet, since no serial is 0) and the
// floor, at or below which serials may have been dropped from the window
// and so are refused whatever the width.
type Window struct {
	Highest uint64
	Floor   uint64
}

// Seen tells whether a serial of the stream was accepted before, and
// when. Admit calls it only when its answer decides.
type Seen func(serial uint64) (at time.Time, seen bool, err error)

// Admit is the anti-replay rule, the one both stores apply. It decides
// serial under a window of width (0: DefaultWindow) and, when it accepts,
// moves w. A refusal leaves w as it was; name is for its message only.
//
//   - serial 0 is refused: no writer uses it;
//   - the first serial of a stream is accepted;
//   - a serial above the highest is accepted, becomes the highest, and
//     raises the floor to highest-width (once highest >= width);
//   - one at or below the floor, or at least width below the highest, is
//     refused as too old;
//   - one within the window is accepted unless seen before.
func (w *Window) Admit(serial, width uint64, name string, seen Seen) (*ReplayError, error) {
	if width == 0 {
		width = DefaultWindow
	}
	switch {
	case serial == 0:
		return &ReplayError{Serial: serial, Sender: name, Invalid: true}, nil
	case w.Highest == 0:
		w.Highest = serial
		return nil, nil
	case serial > w.Highest:
		w.Highest = serial
		if serial >= width {
			w.Floor = max(w.Floor, serial-width)
		}
		return nil, nil
	case serial <= w.Floor, w.Highest >= width && serial <= w.Highest-width:
		return &ReplayError{Serial: serial, Sender: name, TooOld: true, Highest: w.Highest}, nil
	}
	at, ok, err := seen(serial)
	if err != nil {
		return nil, err
	}
	if ok {
		return &ReplayError{Serial: serial, Sender: name, AcceptedAt: at}, nil
	}
	return nil, nil
}
