package server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// logOptions are the query parameters of /containerLogs (PodLogOptions).
type logOptions struct {
	follow, previous, timestamps bool
	// tail is the number of last lines to show; -1 means all.
	tail int64
	// since drops lines written before it (zero: none).
	since time.Time
	// limit caps the bytes written (0: none).
	limit int64
}

func parseLogOptions(q url.Values, now time.Time) (logOptions, error) {
	o := logOptions{tail: -1}
	var err error
	boolean := func(name string) bool {
		if err != nil || q.Get(name) == "" {
			return false
		}
		var v bool
		v, err = strconv.ParseBool(q.Get(name))
		return v
	}
	integer := func(name string) int64 {
		if err != nil || q.Get(name) == "" {
			return -1
		}
		var v int64
		if v, err = strconv.ParseInt(q.Get(name), 10, 64); err == nil && v < 0 {
			err = fmt.Errorf("%s: must not be negative", name)
		}
		return v
	}
	o.follow, o.previous, o.timestamps = boolean("follow"), boolean("previous"), boolean("timestamps")
	o.tail = integer("tailLines")
	if s := integer("sinceSeconds"); s > 0 {
		o.since = now.Add(-time.Duration(s) * time.Second)
	}
	if l := integer("limitBytes"); l > 0 {
		o.limit = l
	}
	if err == nil && q.Get("sinceTime") != "" {
		o.since, err = time.Parse(time.RFC3339, q.Get("sinceTime"))
	}
	return o, err
}

func (s *Server) serveLogs(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	opts, err := parseLogOptions(r.URL.Query(), time.Now())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c, err := s.findContainer(ctx, r.PathValue("ns"), r.PathValue("pod"), r.PathValue("container"), opts.previous)
	if err != nil {
		containerError(w, err)
		return
	}
	st, err := s.cfg.Runtime.ContainerStatus(ctx, c.Id, false)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	f, err := os.Open(st.LogPath)
	if err != nil {
		http.Error(w, fmt.Sprintf("open log of container %s: %v", c.Id, err), http.StatusInternalServerError)
		return
	}
	defer f.Close()
	if opts.tail >= 0 {
		off, err := tailOffset(f, opts.tail)
		if err == nil {
			_, err = f.Seek(off, io.SeekStart)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
	}
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(http.StatusOK)
	running := func() bool {
		st, err := s.cfg.Runtime.ContainerStatus(ctx, c.Id, false)
		return err == nil && st.State == runtimeapi.ContainerState_CONTAINER_RUNNING
	}
	if !opts.follow {
		running = nil
	}
	err = copyLog(ctx, &flushWriter{w: w, limit: opts.limit}, f, opts, running, s.cfg.FollowPoll)
	if err != nil && !errors.Is(err, errLimit) && ctx.Err() == nil {
		s.log.Debug("container logs", "container", c.Id, "err", err)
	}
}

// tailOffset returns where the last n lines of a CRI log begin.
func tailOffset(f *os.File, n int64) (int64, error) {
	if n == 0 {
		return f.Seek(0, io.SeekEnd)
	}
	ring := make([]int64, n)
	var count, off int64
	br := bufio.NewReader(f)
	start := int64(0)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 && line[len(line)-1] == '\n' {
			if _, _, tag, _, ok := parseCRILine(line); ok && tag == 'F' {
				ring[count%n] = start
				count++
				start = off + int64(len(line))
			}
		}
		off += int64(len(line))
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, err
		}
	}
	if count < n {
		return 0, nil
	}
	return ring[count%n], nil
}

// parseCRILine splits "<RFC3339Nano> <stream> <P|F> <msg>\n".
func parseCRILine(line []byte) (ts time.Time, stream []byte, tag byte, msg []byte, ok bool) {
	line = bytes.TrimSuffix(line, []byte("\n"))
	parts := bytes.SplitN(line, []byte(" "), 4)
	if len(parts) < 3 {
		return ts, nil, 0, nil, false
	}
	ts, err := time.Parse(time.RFC3339Nano, string(parts[0]))
	if err != nil {
		return ts, nil, 0, nil, false
	}
	if len(parts) == 3 { // an empty full line: "<ts> stdout F"
		parts = append(parts, nil)
	}
	tag = 'F'
	if string(parts[2]) == "P" {
		tag = 'P'
	} else if string(parts[2]) != "F" {
		// No tag (old format): the third field is the message.
		return ts, parts[1], 'F', bytes.Join(parts[2:], []byte(" ")), true
	}
	return ts, parts[1], tag, parts[3], true
}

// copyLog writes the log from f's offset to w. With running set it keeps
// reading at the end of the file while running reports true.
func copyLog(ctx context.Context, w *flushWriter, f io.Reader, opts logOptions, running func() bool, poll time.Duration) error {
	br := bufio.NewReader(f)
	var pending []byte
	lineStart := true
	for {
		line, err := br.ReadBytes('\n')
		pending = append(pending, line...)
		if err == nil {
			ts, _, tag, msg, ok := parseCRILine(pending)
			pending = pending[:0]
			if !ok || (!opts.since.IsZero() && ts.Before(opts.since)) {
				continue
			}
			if opts.timestamps && lineStart {
				if err := w.write([]byte(ts.Format(time.RFC3339Nano) + " ")); err != nil {
					return err
				}
			}
			if tag == 'F' {
				msg = append(msg, '\n')
			}
			lineStart = tag == 'F'
			if err := w.write(msg); err != nil {
				return err
			}
			continue
		}
		if err != io.EOF {
			return err
		}
		w.flush()
		if running == nil {
			return nil
		}
		alive := running()
		// Whatever was written before the container stopped is in the file
		// now: one more pass drains it.
		if !alive {
			running = nil
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(poll):
		}
	}
}

var errLimit = errors.New("limitBytes reached")

// flushWriter writes to an HTTP response up to limit bytes (0: no limit).
type flushWriter struct {
	w       http.ResponseWriter
	limit   int64
	written int64
}

func (f *flushWriter) write(p []byte) error {
	if f.limit > 0 {
		if left := f.limit - f.written; int64(len(p)) > left {
			p = p[:left]
		}
	}
	n, err := f.w.Write(p)
	f.written += int64(n)
	if err != nil {
		return err
	}
	if f.limit > 0 && f.written >= f.limit {
		f.flush()
		return errLimit
	}
	return nil
}

func (f *flushWriter) flush() { http.NewResponseController(f.w).Flush() }
