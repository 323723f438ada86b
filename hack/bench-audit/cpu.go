package main

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTick is the unit of /proc/<pid>/stat's CPU times (USER_HZ, 100 on
// every Linux this runs on).
const clockTick = 10 * time.Millisecond

// cpuUse is the CPU time (user+system) that each process spent.
type cpuUse struct {
	Audit     time.Duration `json:"audit"`
	APIServer time.Duration `json:"apiServer"`
	Etcd      time.Duration `json:"etcd"`
}

func (u cpuUse) sub(v cpuUse) cpuUse {
	return cpuUse{Audit: u.Audit - v.Audit, APIServer: u.APIServer - v.APIServer, Etcd: u.Etcd - v.Etcd}
}

// cpuMeter reads the CPU time of this process and of the control plane it
// talks to, so that a run's cost shows whose it is: on this machine the
// API server and etcd share the cores with the audit.
type cpuMeter struct {
	apiServer, etcd int // pids, 0 when not found
}

// newCPUMeter finds the kube-apiserver serving host (its --secure-port) and
// the etcd in its --etcd-servers.
func newCPUMeter(host string) (*cpuMeter, error) {
	u, err := url.Parse(host)
	if err != nil {
		return nil, fmt.Errorf("parsing the API server's address %q: %w", host, err)
	}
	m := &cpuMeter{}
	var etcdURL string
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		args := cmdline(p)
		if len(args) == 0 || filepath.Base(args[0]) != "kube-apiserver" || flagValue(args, "secure-port") != u.Port() {
			continue
		}
		m.apiServer = pidOf(p)
		etcdURL = strings.Split(flagValue(args, "etcd-servers"), ",")[0]
	}
	if m.apiServer == 0 {
		return nil, fmt.Errorf("no kube-apiserver process serves port %s", u.Port())
	}
	for _, p := range procs {
		args := cmdline(p)
		if etcdURL != "" && len(args) > 0 && filepath.Base(args[0]) == "etcd" && strings.Contains(flagValue(args, "listen-client-urls"), etcdURL) {
			m.etcd = pidOf(p)
		}
	}
	if m.etcd == 0 {
		return nil, fmt.Errorf("no etcd process listens on %q", etcdURL)
	}
	return m, nil
}

// read returns the CPU time spent so far by each process.
func (m *cpuMeter) read() (cpuUse, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return cpuUse{}, fmt.Errorf("getrusage: %w", err)
	}
	use := cpuUse{Audit: time.Duration(ru.Utime.Nano() + ru.Stime.Nano())}
	var err error
	if use.APIServer, err = procCPU(m.apiServer); err != nil {
		return cpuUse{}, err
	}
	if use.Etcd, err = procCPU(m.etcd); err != nil {
		return cpuUse{}, err
	}
	return use, nil
}

// procCPU is a process's utime+stime from /proc/<pid>/stat.
func procCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("reading the CPU time of process %d: %w", pid, err)
	}
	// The fields after the command name, which is in parentheses and may
	// hold spaces: state is the first, utime the 12th, stime the 13th.
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields after the command name, want 13 or more", pid, len(f))
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: utime %q, stime %q are not numbers", pid, f[11], f[12])
	}
	return time.Duration(utime+stime) * clockTick, nil
}

// cmdline is the arguments in a /proc/<pid>/cmdline file, nil when the
// process is gone or not ours to read.
func cmdline(path string) []string {
	data, err := os.ReadFile(path)
	if err != nil || len(data) == 0 {
		return nil
	}
	return strings.Split(strings.TrimRight(string(data), "\x00"), "\x00")
}

// flagValue is the value of --name=value or --name value in args.
func flagValue(args []string, name string) string {
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v
		}
		if a == "--"+name && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

func pidOf(cmdlinePath string) int {
	pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(cmdlinePath)))
	return pid
}
