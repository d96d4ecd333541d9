package master

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"
)

// progressBar draws the progress of a --oneshot run on w (a terminal) until
// ctx is done: one line, redrawn in place every half second.
func (m *monitor) progressBar(ctx context.Context, w io.Writer) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	drawn := false
	for {
		select {
		case <-ctx.Done():
			if drawn {
				fmt.Fprint(w, "\r\033[K")
			}
			return
		case <-t.C:
		}
		ws, _, _ := m.status()
		line := progressLine(ws)
		if line == "" {
			if drawn {
				fmt.Fprint(w, "\r\033[K")
				drawn = false
			}
			continue
		}
		fmt.Fprint(w, "\r\033[K"+line)
		drawn = true
	}
}

// progressLine renders the changelogs in flight of ws as one line: a bar,
// files and bytes done out of how many, the rate and the ETA; "" when
// nothing is in flight.
func progressLine(ws []workerStatus) string {
	var p progressStatus
	var rate float64
	n := 0
	for _, s := range ws {
		g := s.Progress
		if g == nil {
			continue
		}
		n++
		p.EntriesDone += g.EntriesDone
		p.EntriesTotal += g.EntriesTotal
		p.FilesDone += g.FilesDone
		p.FilesTotal += g.FilesTotal
		p.BytesDone += g.BytesDone
		p.BytesTotal += g.BytesTotal
		p.ETA = max(p.ETA, g.ETA)
		rate += s.BytesPerSec
	}
	if n == 0 {
		return ""
	}
	frac := 0.0
	switch {
	case p.BytesTotal > 0:
		frac = float64(p.BytesDone) / float64(p.BytesTotal)
	case p.FilesTotal > 0:
		frac = float64(p.FilesDone) / float64(p.FilesTotal)
	case p.EntriesTotal > 0:
		frac = float64(p.EntriesDone) / float64(p.EntriesTotal)
	}
	const width = 30
	fill := min(int(frac*width), width)
	line := fmt.Sprintf("[%s%s] %3.0f%% entries %d/%d files %d/%d %s/%s %s/s",
		strings.Repeat("=", fill), strings.Repeat(" ", width-fill), frac*100,
		p.EntriesDone, p.EntriesTotal, p.FilesDone, p.FilesTotal, humanBytes(p.BytesDone), humanBytes(p.BytesTotal), humanBytes(int64(rate)))
	if p.ETA > 0 {
		line += " ETA " + p.ETA.Round(time.Second).String()
	}
	return line
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
