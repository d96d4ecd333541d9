package harness

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of the times in /proc/<pid>/stat: 100 on
// every Linux architecture Go supports.
const clockTicks = 100

// CPUTimes are a process's CPU times from /proc/<pid>/stat.
type CPUTimes struct {
	User, System           time.Duration // the process itself (all its threads)
	ChildUser, ChildSystem time.Duration // its children that it has waited for
	RSS                    int64         // resident set size in bytes
	Threads                int
}

// Self is the process's own CPU time, user plus system.
func (c CPUTimes) Self() time.Duration { return c.User + c.System }

// Children is the CPU time of its waited-for children, user plus system.
func (c CPUTimes) Children() time.Duration { return c.ChildUser + c.ChildSystem }

// ProcCPU reads the CPU times of the process pid (any process, not only a
// child of this one) from /proc/<pid>/stat, in 10 ms ticks.
func ProcCPU(pid int) (CPUTimes, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return CPUTimes{}, err
	}
	// The command name (field 2) is in parentheses and may hold spaces or
	// parentheses: the fields that follow start after the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return CPUTimes{}, fmt.Errorf("/proc/%d/stat: no ')' in %q", pid, s)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime is field 14, stime 15, cutime 16,
	// cstime 17, num_threads 20, rss (pages) 24.
	if len(f) < 22 {
		return CPUTimes{}, fmt.Errorf("/proc/%d/stat: %d fields after the name", pid, len(f))
	}
	var vals [25]int64
	for _, field := range []int{14, 15, 16, 17, 20, 24} {
		v, err := strconv.ParseInt(f[field-3], 10, 64)
		if err != nil {
			return CPUTimes{}, fmt.Errorf("/proc/%d/stat field %d: %w", pid, field, err)
		}
		vals[field] = v
	}
	ticks := func(field int) time.Duration { return time.Duration(vals[field]) * time.Second / clockTicks }
	c := CPUTimes{
		User: ticks(14), System: ticks(15), ChildUser: ticks(16), ChildSystem: ticks(17),
		Threads: int(vals[20]), RSS: vals[24] * int64(os.Getpagesize()),
	}
	return c, nil
}

// Pid is the slave's process id (changed by Restart).
func (s *Slave) Pid() int { return s.cmd.Process.Pid }
