package e2e

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/natmap-go/natmap/internal/testkit/initramfs"
	"github.com/natmap-go/natmap/internal/testkit/testgate"
	"github.com/natmap-go/natmap/internal/testkit/vmplan"
)

// BenchmarkDaemonIdleRSSMIPS is BenchmarkDaemonIdleRSS on a real MIPS
// kernel, as most OpenWrt routers run (mipsel_24kc): qemu-system-mipsel
// boots Debian's Malta kernel on a 24Kc with 128 MiB, whose init
// (internal/testkit/vminit) serves STUN and HTTP keep-alive on the VM's
// loopback, runs `natmap daemon` (built as the mipsel ipk's binary) with 16
// TCP forward mappings, and once every mapping was notified and 20 s idle
// reads natmap's VmRSS, RssAnon, Pss and threads, and what of its memory
// it touches in the next 15 s (as BenchmarkDaemonIdleRSS's touched-KiB);
// then the same with 1 mapping. With NATMAP_C_BIN_MIPSEL (a static mipsel C natmap, built
// outside this project) it also runs 16 and 1 C natmap processes, one per
// mapping as the stock package does, and reports their sums (c-*). Nothing
// leaves the VM: it has no network device. Run it with -benchtime 1x.
//
// The kernel is Debian's linux-image-4kc-malta for mipsel, fetched once
// with apt-get (dpkg --add-architecture mipsel; apt-get update) into the
// user's cache directory; NATMAP_MIPS_KERNEL names another one.
func BenchmarkDaemonIdleRSSMIPS(b *testing.B) {
	testgate.Require(b, "MIPS VM benchmark", false, map[string]string{"qemu-system-mipsel": "qemu-system-mips"})
	kernel := mipsKernel(b)
	dir := b.TempDir()
	runs := []vmplan.Run{{Name: "16mappings", Impl: "go", Mappings: 16}, {Name: "1mapping", Impl: "go", Mappings: 1}}
	files := []initramfs.Entry{initramfs.File(vmplan.GoNatmap, 0o755, buildMIPSel(b, filepath.Join(dir, "natmap"), "../cmd/natmap", false))}
	if c := os.Getenv("NATMAP_C_BIN_MIPSEL"); c != "" {
		files = append(files, initramfs.File(vmplan.CNatmap, 0o755, staticMIPSel(b, c)))
		runs = append(runs, vmplan.Run{Name: "c-16mappings", Impl: "c", Mappings: 16}, vmplan.Run{Name: "c-1mapping", Impl: "c", Mappings: 1})
	}
	initrd := mipsInitrd(b, dir, files, vmplan.Plan{Runs: runs, IdleSeconds: 20, WaitSeconds: 120})
	var got map[string]vmplan.Result
	for b.Loop() {
		got = bootMIPS(b, kernel, initrd)
	}
	for _, r := range runs {
		res, ok := got[r.Name]
		if !ok {
			b.Fatalf("the VM reported nothing for run %s", r.Name)
		}
		b.ReportMetric(res.VmRSS, r.Name+"-KiB")
		b.ReportMetric(res.RssAnon, r.Name+"-anon-KiB")
		b.ReportMetric(res.Pss, r.Name+"-pss-KiB")
		b.ReportMetric(res.Threads, r.Name+"-threads")
		b.ReportMetric(res.Touched, r.Name+"-touched-KiB")
	}
	b.ReportMetric(0, "ns/op")
}

// BenchmarkRelayMIPS measures on a real MIPS kernel (the VM of
// BenchmarkDaemonIdleRSSMIPS) what building the mipsel package without
// inlining (scripts/ipk.sh's -gcflags=all=-l, which keeps it under
// 1.5 MiB) costs the relay: in one boot, two builds of natmap take turns,
// 3 times each: as the package builds it ("noinline") and the same with
// inlining ("inline"). Each run starts natmap with the C natmap's command
// line in forward mode (-b PORT -t 127.0.0.1 -p SINK; STUN and keep-alive
// on the VM's loopback), and vminit's client sends relayMIPSMiB MiB
// through it on loopback to a sink (up), then receives as much (down),
// while vminit reads natmap's CPU time (utime+stime) from /proc/PID/stat.
// Reported per build and direction, over the 3 runs: natmap's CPU ms per
// MiB relayed (and of it user space, where inlining matters: the relay
// splices, so the copying is the kernel's) and the throughput. qemu
// emulates the 24Kc on another CPU, so the absolute figures are not a
// router's: the ratio of the two builds is what this measures. The VM's
// clocks count instructions (qemu's -icount, its RTC too: -rtc clock=vm,
// else the kernel calibrates its timer against the host's time and every
// boot gets another scale), so CPU times and throughput are in executed
// instructions, not in how fast or busy the host is nor in what qemu
// spends translating code on a binary's first run; a real 24Kc's cache
// misses and stalls are not in them. The kernel accounts CPU time by
// sampling at its timer tick, so a run needs many ticks (relayMIPSShift).
// Run it with -benchtime 1x.
func BenchmarkRelayMIPS(b *testing.B) {
	testgate.Require(b, "MIPS VM benchmark", false, map[string]string{"qemu-system-mipsel": "qemu-system-mips"})
	kernel := mipsKernel(b)
	dir := b.TempDir()
	builds := []struct {
		name, path string
		inline     bool
	}{{"noinline", vmplan.GoNatmap, false}, {"inline", "/bin/natmap-inline", true}}
	var files []initramfs.Entry
	size := map[string]int{} // build name -> binary's bytes
	for _, bd := range builds {
		bin := buildMIPSel(b, filepath.Join(dir, bd.name), "../cmd/natmap", bd.inline)
		files = append(files, initramfs.File(bd.path, 0o755, bin))
		size[bd.name] = len(bin)
	}
	var runs []vmplan.Run
	buildOf := map[string]string{} // run name -> build name
	for i := range 3 {
		for _, bd := range builds {
			name := fmt.Sprintf("%s-%d", bd.name, i+1)
			runs = append(runs, vmplan.Run{Name: name, Impl: "go", Binary: bd.path, RelayMiB: relayMIPSMiB})
			buildOf[name] = bd.name
		}
	}
	initrd := mipsInitrd(b, dir, files, vmplan.Plan{Runs: runs, WaitSeconds: 120})
	var got map[string]vmplan.Result
	for b.Loop() {
		got = bootMIPS(b, kernel, initrd, "-icount", relayMIPSShift, "-rtc", "clock=vm")
	}
	type sum struct{ mib, seconds, user, sys float64 }
	sums := map[string]*sum{}
	for _, r := range runs {
		res, ok := got[r.Name]
		if !ok {
			b.Fatalf("the VM reported nothing for run %s", r.Name)
		}
		if len(res.Transfers) != 2 {
			b.Fatalf("run %s: %d transfers, want up and down", r.Name, len(res.Transfers))
		}
		for _, t := range res.Transfers {
			k := buildOf[r.Name] + "-" + t.Dir
			if sums[k] == nil {
				sums[k] = &sum{}
			}
			s := sums[k]
			s.mib += t.MiB
			s.seconds += t.Seconds
			s.user += float64(t.UserTicks) * 1000 / vmplan.UserHZ
			s.sys += float64(t.SysTicks) * 1000 / vmplan.UserHZ
		}
	}
	for _, bd := range builds {
		b.ReportMetric(float64(size[bd.name]), bd.name+"-bytes")
		for _, d := range []string{"up", "down"} {
			s := sums[bd.name+"-"+d]
			b.ReportMetric((s.user+s.sys)/s.mib, bd.name+"-"+d+"-CPU-ms/MiB")
			b.ReportMetric(s.user/s.mib, bd.name+"-"+d+"-user-ms/MiB")
			b.ReportMetric(s.mib/s.seconds, bd.name+"-"+d+"-MiB/s")
		}
	}
	b.ReportMetric(0, "ns/op")
}

// relayMIPSMiB is what BenchmarkRelayMIPS sends each way per run, and
// relayMIPSShift the VM's time per instruction: 2^4 ns, a 62.5 MHz CPU
// doing one per cycle, on which natmap takes some hundreds of CPU ticks
// (10 ms) per run. A slower clock gives more ticks but distorts the
// relaying: at 2^7 ns the kernel's 4 ms timer tick and time slices are
// 31,000 instructions, natmap relays less per wakeup and its user time per
// MiB triples. 12 runs take about 2 minutes on the host.
const (
	relayMIPSMiB   = 128
	relayMIPSShift = "shift=4"
)

// mipsInitrd writes the VM's initramfs into dir: vminit as its init and
// notify script, the plan, and files (the binaries the plan runs).
func mipsInitrd(b *testing.B, dir string, files []initramfs.Entry, p vmplan.Plan) string {
	b.Helper()
	plan, err := json.Marshal(p)
	if err != nil {
		b.Fatal(err)
	}
	all := append([]initramfs.Entry{
		initramfs.Dir("dev"), initramfs.CharDev("dev/console", 0o600, 5, 1),
		initramfs.Dir("proc"), initramfs.Dir("tmp"), initramfs.Dir("etc"), initramfs.Dir("bin"),
		initramfs.File("init", 0o755, buildMIPSel(b, filepath.Join(dir, "vminit"), "../internal/testkit/vminit", false)),
		initramfs.Symlink(vmplan.Notify, "/init"),
		initramfs.File(vmplan.PlanPath, 0o644, plan),
	}, files...)
	var cpio bytes.Buffer
	if err := initramfs.Write(&cpio, all); err != nil {
		b.Fatal(err)
	}
	initrd := filepath.Join(dir, "initrd.cpio")
	if err := os.WriteFile(initrd, cpio.Bytes(), 0o644); err != nil {
		b.Fatal(err)
	}
	return initrd
}

// bootMIPS boots the kernel with initrd and returns the runs' results by
// name, once vminit says it is done. qemu gets the extra arguments too.
func bootMIPS(b *testing.B, kernel, initrd string, extra ...string) map[string]vmplan.Result {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	args := append([]string{"-M", "malta", "-cpu", "24Kc", "-m", "128",
		"-nographic", "-vga", "none", "-no-reboot", "-nic", "none",
		"-kernel", kernel, "-initrd", initrd, "-append", "console=ttyS0 quiet panic=-1"}, extra...)
	cmd := exec.CommandContext(ctx, "qemu-system-mipsel", args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	var console strings.Builder
	results := map[string]vmplan.Result{}
	var failure string
	done := false
	sc := bufio.NewScanner(out)
	for !done && sc.Scan() {
		console.WriteString(sc.Text() + "\n")
		l, ok, err := vmplan.Parse(sc.Text())
		switch {
		case err != nil:
			failure = err.Error()
		case !ok:
		case l.Error != "":
			failure = l.Error
		case l.Done:
			done = true
		case l.Machine != nil:
			m := l.Machine
			b.Logf("VM: uname -m %s, kernel %s, cpu model %q, MemTotal %s", m.Machine, m.Release, m.CPUModel, m.MemTotal)
		case l.Result != nil:
			r := l.Result
			results[r.Run] = *r
			for _, t := range r.Transfers {
				b.Logf("%s %s: %.0f MiB in %.2f s (%.1f MiB/s), natmap CPU %d ms user + %d ms system",
					r.Run, t.Dir, t.MiB, t.Seconds, t.MiB/t.Seconds, t.UserTicks*1000/vmplan.UserHZ, t.SysTicks*1000/vmplan.UserHZ)
			}
			if r.Transfers == nil {
				b.Logf("%s: %d processes, VmRSS %.0f KiB, RssAnon %.0f KiB, Pss %.0f KiB, %.0f threads, touched in 15 s %.0f KiB",
					r.Run, r.Procs, r.VmRSS, r.RssAnon, r.Pss, r.Threads, r.Touched)
			}
			for _, p := range r.Problems {
				b.Logf("  %s logged: %s", r.Run, p)
			}
		}
	}
	if done {
		// vminit powers the machine off; qemu is not needed any more.
		cancel()
	}
	cmd.Wait()
	if failure != "" || !done {
		if failure == "" {
			failure = `no "done" from vminit`
		}
		b.Fatalf("the MIPS VM failed (%s); its console:\n%s", failure, console.String())
	}
	return results
}

// buildMIPSel builds pkg into bin for mipsel_24kc as scripts/ipk.sh builds
// the package's binary (static, stripped, soft float, no inlining; with
// inline, the same with inlining) and returns the binary.
func buildMIPSel(b *testing.B, bin, pkg string, inline bool) []byte {
	b.Helper()
	args := []string{"build", "-trimpath", "-buildvcs=false", "-gcflags=all=-l", "-ldflags", "-s -w", "-o", bin, pkg}
	if inline {
		args = slices.Delete(args, 3, 4)
	}
	build := exec.Command("go", args...)
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=mipsle", "GOMIPS=softfloat")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("building %s for mipsel: %v\n%s", pkg, err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		b.Fatal(err)
	}
	return data
}

// staticMIPSel reads a binary that must run in the VM as it is: a
// little-endian MIPS ELF without an interpreter (the VM has no libc).
func staticMIPSel(b *testing.B, path string) []byte {
	b.Helper()
	f, err := elf.Open(path)
	if err != nil {
		b.Fatalf("NATMAP_C_BIN_MIPSEL: %v", err)
	}
	defer f.Close()
	if f.Machine != elf.EM_MIPS || f.Data != elf.ELFDATA2LSB || f.Class != elf.ELFCLASS32 {
		b.Fatalf("NATMAP_C_BIN_MIPSEL %s is %v %v %v, not a 32-bit little-endian MIPS binary", path, f.Class, f.Data, f.Machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b.Fatalf("NATMAP_C_BIN_MIPSEL %s is dynamically linked; the VM has no libc: link it with -static", path)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	return data
}

// mipsKernel returns the Malta kernel to boot: NATMAP_MIPS_KERNEL, else
// Debian's, fetched once into the user's cache directory.
func mipsKernel(b *testing.B) string {
	b.Helper()
	if k := os.Getenv("NATMAP_MIPS_KERNEL"); k != "" {
		return k
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		b.Fatal(err)
	}
	dir := filepath.Join(cache, "natmap", "mipsel-malta")
	if ks, _ := filepath.Glob(filepath.Join(dir, "vmlinuz-*")); len(ks) > 0 {
		return ks[len(ks)-1]
	}
	k, err := fetchMaltaKernel(dir)
	if err != nil {
		testgate.Unmet(b, "MIPS VM benchmark: Debian's mipsel Malta kernel: "+err.Error()+
			" (as root: dpkg --add-architecture mipsel && apt-get update; or set NATMAP_MIPS_KERNEL to a mipsel Malta kernel)")
	}
	return k
}

// fetchMaltaKernel downloads Debian's linux-image-4kc-malta for mipsel with
// apt-get and puts its kernel into dir.
func fetchMaltaKernel(dir string) (string, error) {
	// The meta-package names the current kernel's package.
	out, err := exec.Command("apt-cache", "depends", "--no-recommends", "--no-suggests", "linux-image-4kc-malta:mipsel").Output()
	if err != nil {
		return "", fmt.Errorf("apt-cache depends linux-image-4kc-malta:mipsel: %w", err)
	}
	m := regexp.MustCompile(`Depends: (linux-image-[^\s:]+-4kc-malta):mipsel`).FindSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("linux-image-4kc-malta:mipsel depends on no kernel package:\n%s", out)
	}
	tmp, err := os.MkdirTemp("", "natmap-malta")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	get := exec.Command("apt-get", "-o", "APT::Sandbox::User=root", "download", string(m[1])+":mipsel")
	get.Dir = tmp
	if out, err := get.CombinedOutput(); err != nil {
		return "", fmt.Errorf("apt-get download %s: %w\n%s", m[1], err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(tmp, "*.deb"))
	if len(debs) != 1 {
		return "", fmt.Errorf("apt-get download %s left %d .deb files", m[1], len(debs))
	}
	// The kernel is ./boot/vmlinuz-VERSION in the package's data.
	data := exec.Command("dpkg-deb", "--fsys-tarfile", debs[0])
	fsys, err := data.StdoutPipe()
	if err != nil {
		return "", err
	}
	if err := data.Start(); err != nil {
		return "", fmt.Errorf("dpkg-deb: %w", err)
	}
	defer data.Wait()
	defer fsys.Close()
	tr := tar.NewReader(fsys)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return "", fmt.Errorf("%s has no boot/vmlinuz-*", filepath.Base(debs[0]))
		}
		if err != nil {
			return "", fmt.Errorf("%s: %w", filepath.Base(debs[0]), err)
		}
		name := filepath.Base(h.Name)
		if !strings.HasPrefix(strings.TrimPrefix(h.Name, "."), "/boot/vmlinuz-") {
			continue
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", err
		}
		part := filepath.Join(dir, "."+name+".part")
		f, err := os.Create(part)
		if err != nil {
			return "", err
		}
		_, err = io.Copy(f, tr)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(part, filepath.Join(dir, name))
		}
		if err != nil {
			os.Remove(part)
			return "", fmt.Errorf("caching the kernel: %w", err)
		}
		return filepath.Join(dir, name), nil
	}
}
