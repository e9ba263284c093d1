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
	files := []initramfs.Entry{
		initramfs.Dir("dev"), initramfs.CharDev("dev/console", 0o600, 5, 1),
		initramfs.Dir("proc"), initramfs.Dir("tmp"), initramfs.Dir("etc"), initramfs.Dir("bin"),
		initramfs.File("init", 0o755, buildMIPSel(b, dir, "../internal/testkit/vminit")),
		initramfs.Symlink(vmplan.Notify, "/init"),
		initramfs.File(vmplan.GoNatmap, 0o755, buildMIPSel(b, dir, "../cmd/natmap")),
	}
	if c := os.Getenv("NATMAP_C_BIN_MIPSEL"); c != "" {
		files = append(files, initramfs.File(vmplan.CNatmap, 0o755, staticMIPSel(b, c)))
		runs = append(runs, vmplan.Run{Name: "c-16mappings", Impl: "c", Mappings: 16}, vmplan.Run{Name: "c-1mapping", Impl: "c", Mappings: 1})
	}
	plan, err := json.Marshal(vmplan.Plan{Runs: runs, IdleSeconds: 20, WaitSeconds: 120})
	if err != nil {
		b.Fatal(err)
	}
	files = append(files, initramfs.File(vmplan.PlanPath, 0o644, plan))
	var cpio bytes.Buffer
	if err := initramfs.Write(&cpio, files); err != nil {
		b.Fatal(err)
	}
	initrd := filepath.Join(dir, "initrd.cpio")
	if err := os.WriteFile(initrd, cpio.Bytes(), 0o644); err != nil {
		b.Fatal(err)
	}
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

// bootMIPS boots the kernel with initrd and returns the runs' results by
// name, once vminit says it is done.
func bootMIPS(b *testing.B, kernel, initrd string) map[string]vmplan.Result {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "qemu-system-mipsel", "-M", "malta", "-cpu", "24Kc", "-m", "128",
		"-nographic", "-vga", "none", "-no-reboot", "-nic", "none",
		"-kernel", kernel, "-initrd", initrd, "-append", "console=ttyS0 quiet panic=-1")
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
			b.Logf("%s: %d processes, VmRSS %.0f KiB, RssAnon %.0f KiB, Pss %.0f KiB, %.0f threads, touched in 15 s %.0f KiB",
				r.Run, r.Procs, r.VmRSS, r.RssAnon, r.Pss, r.Threads, r.Touched)
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

// buildMIPSel builds pkg for mipsel_24kc as scripts/ipk.sh builds the
// package's binary (static, stripped, soft float, no inlining) and returns
// the binary.
func buildMIPSel(b *testing.B, dir, pkg string) []byte {
	b.Helper()
	bin := filepath.Join(dir, filepath.Base(pkg))
	build := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-gcflags=all=-l", "-ldflags", "-s -w", "-o", bin, pkg)
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
