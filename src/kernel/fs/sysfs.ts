/**
 * The /sys, /dev and /proc trees of the model, with the kernel's attribute semantics:
 * drivers/pci/pci-sysfs.c, drivers/pci/iov.c, drivers/base/bus.c, drivers/pci/pci-driver.c,
 * drivers/iommu/iommu.c, kernel/params.c.
 */
import { ERRNO } from "../../sys/errno.js";
import { O_NONBLOCK } from "../../sys/syscalls.js";
import { SysErrorCode } from "../errors.js";
import type { Kernel, Task } from "../kernel.js";
import { KernelLog } from "../printk.js";
import { kstrtobool, SRIOV_ATTRS } from "../pci/iov.js";
import { pciDeviceEntries, pciUevent, wakeupSourceDir, wakeupSourcesOf } from "../pci/pci-sysfs.js";
import type { PciDev, PciDriver } from "../pci/pci.js";
import { ContainerFile } from "../vfio/vfio_main.js";
import { IommufdFile } from "../iommufd/main.js";
import type { OpenFile } from "./file.js";
import type { BlockDisk } from "../block.js";
import { lazyDir, link, relLink, ro, rw, staticDir, sysLink, thunkDir, wo, type DirNode, type Node } from "./vfs.js";
import { makedev } from "../../sys/devnum.js";
import { INIT_MNT_NS } from "../process.js";

/**
 * The major of the "vfio-dev" char region (alloc_chrdev_region, dynamic in Linux; any fixed
 * number serves the model): vfio-dev/vfio<N>/dev reads "510:N".
 */
export const VFIO_DEV_MAJOR = 510;

/**
 * Device numbers of the model's char nodes (st_rdev through the seam's stat). Real where Linux
 * fixes them: /dev/vfio/vfio is misc 10:196 (VFIO_MINOR), /dev/kmsg is mem 1:11. Linux gives the
 * "vfio" group region a dynamic major and each group the next free minor (an IDA, in creation
 * order, freed when the group is released); the model uses major 242 and the same IDA
 * (VfioGroup.minor). /dev/iommu is a dynamic misc minor: misc_minor_alloc gives them from 256 up
 * (ida_alloc_range(MISC_DYNAMIC_MINOR + 1, MINORMASK) in 6.12.117's and 7.3.4's misc.c), and
 * the lab's 6.12.117-lab and 7.3.4-lab builds register one before iommufd: 10:257 on both
 * (docs/kernel-notes.md row 33; another configuration may differ). Nothing in vfioctl derives a group from these numbers: holders are matched
 * by comparing an fd's st_rdev with the node's own.
 */
export const VFIO_MISC_RDEV = makedev(10, 196);
export const VFIO_GROUP_MAJOR = 242;
export const IOMMU_MISC_RDEV = makedev(10, 257);
export const KMSG_RDEV = makedev(1, 11);

/** USER_HZ: the clock-tick unit of /proc (jiffies_to_clock_t). */
const USER_HZ = 100;

/**
 * fs/proc/array.c do_task_stat: the 52 fields of /proc/<pid>/stat. The model has no scheduler or
 * memory accounting, so the counters are 0; state is D while one of the process's syscalls sleeps
 * in the kernel, else S; starttime is the spawn time in clock ticks since boot.
 */
function procPidStat(k: Kernel, pid: number, comm: string, startNs: bigint): string {
  const blocked = k.blocked().some((t) => t.pid === pid);
  const starttime = (startNs * BigInt(USER_HZ)) / 1_000_000_000n;
  const f: (string | number | bigint)[] = [
    pid, `(${comm.slice(0, 15)})`, blocked ? "D" : "S",
    1, pid, pid, 0, -1, 0x400000, // ppid pgrp session tty_nr tpgid flags
    0, 0, 0, 0, 0, 0, 0, 0, // minflt cminflt majflt cmajflt utime stime cutime cstime
    20, 0, 1, 0, starttime, // priority nice num_threads itrealvalue starttime
    0, 0, "18446744073709551615", // vsize rss rsslim
  ];
  while (f.length < 52) f.push(0);
  return f.join(" ") + "\n";
}

/** fs/proc/stat.c show_stat: the lines tools read (btime: boot time in seconds since the epoch). */
function procStat(k: Kernel): string {
  const blocked = new Set(k.blocked().map((t) => t.pid)).size;
  return ["cpu  0 0 0 0 0 0 0 0 0 0", "cpu0 0 0 0 0 0 0 0 0 0 0", "intr 0", "ctxt 0", `btime ${k.btime}`, `processes ${k.processes.size}`, "procs_running 1", `procs_blocked ${blocked}`, "softirq 0 0 0 0 0 0 0 0 0 0 0"].join("\n") + "\n";
}

/** fs/proc/uptime.c: seconds since boot and idle seconds (the model never idles: 0.00). */
function procUptime(k: Kernel): string {
  const cs = Number(k.clock.now() / 10_000_000n);
  return `${Math.floor(cs / 100)}.${String(cs % 100).padStart(2, "0")} 0.00\n`;
}

const hex = (n: number, w: number) => `0x${n.toString(16).padStart(w, "0")}`;
const str = (b: Buffer, count: number) => b.subarray(0, count).toString("latin1");

/** a PCI function's directory name in /sys/devices */
const PCI_NAME = /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/;

export class SysfsTrees {
  /** /sys/devices/...: directory path → child names (refcounted) */
  private children = new Map<string, Map<string, number>>();
  private byDir = new Map<string, PciDev>();
  /** the PCI core's and SR-IOV's attributes of a device directory */
  private readonly pciEntries = pciDeviceEntries(SRIOV_ATTRS);
  /** /sys/devices/...: a folder's path → the nodes of the folders in it made so far, by name ({@link devicesDir}) */
  private readonly deviceDirs = new Map<string, Map<string, DirNode>>();

  constructor(private readonly k: Kernel) {}

  addDevicePath(dev: PciDev): void {
    this.byDir.set(dev.sysfsDir, dev);
    this.forgetDevicesDir(dev.sysfsDir);
    forEachParent(dev.sysfsDir, (parent, name) => {
      let m = this.children.get(parent);
      if (!m) this.children.set(parent, (m = new Map()));
      m.set(name, (m.get(name) ?? 0) + 1);
    });
  }

  removeDevicePath(dev: PciDev): void {
    this.byDir.delete(dev.sysfsDir);
    this.forgetDevicesDir(dev.sysfsDir);
    forEachParent(dev.sysfsDir, (parent, name) => {
      const m = this.children.get(parent);
      if (!m) return;
      const n = (m.get(name) ?? 1) - 1;
      if (n <= 0) m.delete(name);
      else m.set(name, n);
    });
  }

  root(task: Task): DirNode {
    const k = this.k;
    // thunkDir: a lookup builds only the nodes on its path (every lookup starts here)
    return thunkDir({
      sys: () =>
        thunkDir({
          bus: () => thunkDir({ pci: () => this.busPci() }),
          devices: () => this.devicesDir("/sys", "devices"),
          class: () => staticDir({ ...(k.profile.behaviour.vfioDeviceSysfs ? { "vfio-dev": this.vfioDevClass() } : {}), net: this.netClass() }),
          block: () =>
            lazyDir(
              () => k.disks.disks().map((d) => d.name),
              (name) => {
                const d = k.disks.get(name);
                return d ? this.diskDir(d) : undefined;
              },
            ),
          kernel: () => staticDir({ iommu_groups: this.iommuGroups() }),
          module: () => this.modules(),
        }),
      dev: () => staticDir({
        vfio: lazyDir(
          () => ["vfio", ...[...k.vfio.groups.values()].filter((g) => k.vfio.groupNode(g.id)).map((g) => String(g.id)), ...(this.cdevNodes().length ? ["devices"] : [])],
          (name) => {
            if (name === "vfio") return { t: "char", mode: 0o666, rdev: VFIO_MISC_RDEV, open: (_t, flags) => new ContainerFile(k, flags) };
            // devtmpfs makes vfio/devices/ with the first node and removes it with the last
            if (name === "devices") return this.cdevNodes().length ? this.cdevDir() : undefined;
            const g = /^\d+$/.test(name) ? k.vfio.groupNode(Number(name)) : undefined;
            if (!g) return undefined;
            return { t: "char", mode: 0o600, rdev: makedev(VFIO_GROUP_MAJOR, g.minor), open: (_t, flags) => k.vfio.openGroup(Number(name), flags) };
          },
        ),
        kmsg: { t: "char", mode: 0o644, rdev: KMSG_RDEV, open: (_t, flags) => new KmsgFile(k, flags) },
        // drivers/iommu/iommufd/main.c iommufd_misc_dev: "iommu", mode 0660
        ...(k.profile.config.IOMMUFD ? { iommu: { t: "char" as const, mode: 0o660, rdev: IOMMU_MISC_RDEV, open: (_t: Task, flags: number) => new IommufdFile(flags) } } : {}),
      }),
      proc: () => lazyDir(
        () => ["self", "stat", "uptime", "version", ...(k.profile.ident.versionSignature ? ["version_signature"] : []), "sys", "net", "swaps", ...[...k.processes.keys()].map(String)],
        (name) => {
          // net/ipv4/route.c, fib_trie.c, net/ipv6/addrconf.c, route.c: the model's interfaces (src/kernel/net.ts)
          if (name === "net")
            return staticDir({
              route: ro(() => k.net.procRoute()),
              fib_trie: ro(() => k.net.procFibTrie()),
              if_inet6: ro(() => k.net.procIfInet6()),
              ipv6_route: ro(() => k.net.procIpv6Route()),
            });
          if (name === "self") return link(String(task.pid));
          // drivers/char/random.c proc_do_uuid: boot_id is one random UUID per boot
          // kernel/utsname_sysctl.c osrelease (uname -r) and fs/proc/version.c: the modelled kernel's names
          if (name === "sys") return staticDir({ kernel: staticDir({ osrelease: ro(() => `${k.profile.ident.osrelease}\n`), random: staticDir({ boot_id: ro(() => `${k.bootId}\n`) }) }) });
          if (name === "version") return ro(() => `${k.profile.ident.procVersion}\n`);
          // Ubuntu's kernels only (the ubuntu/version_signature patch): "Ubuntu <ABI>-<flavour> <upstream>"
          if (name === "version_signature" && k.profile.ident.versionSignature) return ro(() => `${k.profile.ident.versionSignature}\n`);
          if (name === "swaps") return ro(() => k.disks.procSwaps());
          if (name === "stat") return ro(() => procStat(k));
          if (name === "uptime") return ro(() => procUptime(k));
          const p = k.processes.get(Number(name));
          if (!p || !/^\d+$/.test(name)) return undefined;
          return staticDir({
            comm: ro(() => `${p.comm}\n`),
            // fs/proc/array.c proc_pid_status, the lines a permission check reads: the model's
            // processes run as root with every capability (41 on 6.x: CapEff 000001ffffffffff)
            status: ro(() => `Name:\t${p.comm.slice(0, 15)}\nPid:\t${p.pid}\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\t\nCapEff:\t000001ffffffffff\n`),
            mountinfo: ro(() => k.disks.procMountinfo()),
            stat: ro(() => procPidStat(k, p.pid, p.comm, p.startNs)),
            // kernel/cgroup/cgroup.c proc_cgroup_show: the v2 line only (the model has no v1 hierarchies)
            cgroup: ro(() => `0::${p.cgroup}\n`),
            // fs/proc/base.c: magic links. fd/N names the file as the process opened it (d_path:
            // a chroot's prefix, a container's own path) and leads to the open file itself.
            fd: lazyDir(
              () => p.fdNumbers().map(String),
              (n) => {
                const text = /^\d+$/.test(n) ? p.fdLink(Number(n)) : undefined;
                return text === undefined ? undefined : { t: "link", target: text, jump: () => p.fdNode(Number(n)) };
              },
            ),
            root: { t: "link", target: p.mntNs === INIT_MNT_NS ? p.root : "/", jump: () => this.root(task) },
            ns: staticDir({ mnt: { t: "link", target: `mnt:[${p.mntNs}]`, jump: () => ({ t: "anon" }) } }),
          });
        },
      ),
    });
  }

  // ---------------------------------------------------------------- /sys/bus/pci

  private busPci(): DirNode {
    const k = this.k;
    return staticDir({
      devices: lazyDir(
        () => [...k.pci.devices.keys()].sort(),
        (name) => {
          const d = k.pci.devices.get(name);
          return d ? sysLink("/sys/bus/pci/devices", d.sysfsDir) : undefined;
        },
      ),
      drivers: lazyDir(
        () => k.drivers.drivers.map((d) => d.name),
        (name) => {
          const drv = k.drivers.driver(name);
          return drv ? this.driverDir(drv) : undefined;
        },
      ),
      drivers_probe: wo((task, b, c) => k.drivers.driversProbeStore(task, str(b, c), c)),
      drivers_autoprobe: rw(
        () => `${k.drivers.driversAutoprobe ? 1 : 0}\n`,
        (_t, b, c) => k.drivers.driversAutoprobeStore(str(b, c), c),
      ),
    });
  }

  private driverDir(drv: PciDriver): DirNode {
    const k = this.k;
    const base = `/sys/bus/pci/drivers/${drv.name}`;
    const fixed: Record<string, Node> = {
      bind: wo((task, b, c) => k.drivers.bindStore(task, drv, str(b, c), c)),
      unbind: wo((task, b, c) => k.drivers.unbindStore(task, drv, str(b, c), c)),
      new_id: wo((task, b, c) => k.drivers.newIdStore(task, drv, str(b, c), c)),
      remove_id: wo((_t, b, c) => k.drivers.removeIdStore(drv, str(b, c), c)),
      uevent: wo((_t, _b, c) => c),
      module: sysLink(base, `/sys/module/${drv.module}`),
    };
    const bound = () => [...k.pci.devices.values()].filter((d) => d.driver === drv);
    return lazyDir(
      () => [...Object.keys(fixed), ...bound().map((d) => d.name)],
      (name) => {
        if (fixed[name]) return fixed[name];
        const d = k.pci.devices.get(name);
        return d && d.driver === drv ? sysLink(base, d.sysfsDir) : undefined;
      },
    );
  }

  // ---------------------------------------------------------------- /sys/devices

  /**
   * The folder `name` of folder `parent` under /sys/devices, made at its first lookup and kept
   * (its nodes are worked out from the kernel's state at each lookup), by name in its parent's
   * entry (a lookup makes no path); a device's own is made again once a device is added or
   * removed at its path.
   */
  private devicesDir(parent: string, name: string): DirNode {
    let dirs = this.deviceDirs.get(parent);
    if (!dirs) this.deviceDirs.set(parent, (dirs = new Map()));
    let dir = dirs.get(name);
    if (!dir) {
      const path = `${parent}/${name}`;
      dirs.set(name, (dir = this.makeDevicesDir(path, this.byDir.get(path))));
    }
    return dir;
  }

  private forgetDevicesDir(path: string): void {
    const i = path.lastIndexOf("/");
    this.deviceDirs.get(path.slice(0, i))?.delete(path.slice(i + 1));
  }

  private makeDevicesDir(path: string, dev: PciDev | undefined): DirNode {
    return lazyDir(
      () => [...(dev ? this.deviceEntryNames(dev) : []), ...(dev ? virtfnNames(dev) : []), ...(this.children.get(path)?.keys() ?? [])],
      (name) => {
        // a child device's directory is named DDDD:BB:DD.F, which no attribute is
        const child = this.children.get(path)?.has(name);
        if (child && PCI_NAME.test(name)) return this.devicesDir(path, name);
        if (dev) {
          const a = this.deviceEntry(dev, name) ?? virtfnLink(dev, name);
          if (a) return a;
        }
        if (child) return this.devicesDir(path, name);
        return undefined;
      },
    );
  }

  /**
   * What the driver core and other subsystems add to a device's directory after the PCI core's
   * attribute groups (src/kernel/pci/pci-sysfs.ts, the SR-IOV groups of iov.ts): uevent,
   * power/, links, class devices. In the order readdir lists them; each makes its node for the
   * device it is given, or undefined when that device has none. One table for every device: a
   * lookup makes only the node it asks for (a path walk looks up one name per directory).
   */
  private static readonly DEVICE_ENTRIES: Readonly<Record<string, (d: PciDev, k: Kernel, s: SysfsTrees) => Node | undefined>> = {
    // pci-sysfs.c driver_override_show and driver_set_override (the store) take device_lock
    // (9561475db680, 4.13): both wait behind a removal that waits for a VF's user. The generic
    // driver_override (driverOverrideGeneric: 6.12.80+, 7.0) takes a spinlock instead: no wait.
    driver_override: (d, k) =>
      k.profile.behaviour.driverOverrideGeneric
        ? {
            ...rw(
              () => `${d.driverOverride ?? "(null)"}\n`,
              (_t, b, c) => k.drivers.driverOverrideStore(d, b, c),
            ),
            wouldBlock: () => false,
          }
        : {
            ...rw(
              // a read that waited for the lock of a device removed meanwhile: ENODEV (the lab, 6.1)
              (task) =>
                k.withDeviceLockNow(task, d, () => {
                  if (!d.present) throw new SysErrorCode(ERRNO.ENODEV);
                  return `${d.driverOverride ?? "(null)"}\n`;
                }),
              (t, b, c) => k.withDeviceLock(t, d, () => k.drivers.driverOverrideStore(d, b, c)),
            ),
            wouldBlock: () => d.lock.wouldBlock(),
          },
    // drivers/base/core.c uevent_show; uevent_store → kobject_synth_uevent: "ACTION [UUID
    // [KEY=VALUE …]]" synthesizes that event (the model's queue carries add, remove, bind and
    // unbind; change, move, online and offline are accepted and not queued), anything else EINVAL.
    // The event's properties are dev_uevent's at the write, as this file's show: DRIVER= when
    // the device is bound, for every action
    uevent: (d, k) =>
      rw(
        () => pciUevent(d),
        (_t, b, c) => {
          const action = b.subarray(0, c).toString("latin1").trim().split(/\s+/)[0] ?? "";
          if (action === "add" || action === "remove" || action === "bind" || action === "unbind") k.uevent(action, d, d.driver?.name, true);
          else if (!["change", "move", "online", "offline"].includes(action)) return -ERRNO.EINVAL;
          return c;
        },
      ),
    subsystem: (d) => sysLink(d.sysfsDir, "/sys/bus/pci"),
    driver: (d) => (d.driver ? sysLink(d.sysfsDir, `/sys/bus/pci/drivers/${d.driver.name}`) : undefined),
    // drivers/acpi/glue.c acpi_physnode_link_name: the ACPI companion
    firmware_node: (d) => (d.acpiNode ? sysLink(d.sysfsDir, `/sys/devices/${d.acpiNode}`) : undefined),
    // iommu_device_link: the IOMMU unit that translates for the device (one VT-d unit in the model)
    iommu: (d) => (d.iommuGroup ? sysLink(d.sysfsDir, "/sys/devices/virtual/iommu/dmar0") : undefined),
    iommu_group: (d) => (d.iommuGroup ? sysLink(d.sysfsDir, `/sys/kernel/iommu_groups/${d.iommuGroup.id}`) : undefined),
    physfn: (d) => (d.physfn ? sysLink(d.sysfsDir, d.physfn.sysfsDir) : undefined),
    power: (d, _k, s) => s.powerDir(d),
    // drivers/base/power/wakeup.c: the device's wakeup sources (class "wakeup")
    wakeup: (d, k) => {
      const ws = wakeupSourcesOf(d, k);
      if (!ws.length) return undefined;
      const base = `${d.sysfsDir}/wakeup`;
      return staticDir(Object.fromEntries(ws.map((w) => [`wakeup${w.id}`, wakeupSourceDir(d, w.name, (to) => relLink(`${base}/wakeup${w.id}`, to))])));
    },
    // drivers/pci/msi/msi.c msi_sysfs_populate_desc: msi_irqs/<irq> per vector while MSI or
    // MSI-X is on, each reading its mode ("msix")
    msi_irqs: (d) => (d.msiIrqs.length ? staticDir(Object.fromEntries(d.msiIrqs.map((i) => [String(i), ro(() => "msix\n")]))) : undefined),
    nvme: (d, k, s) => {
      const disks = k.disks.disks().filter((b) => b.dev === d);
      return disks.length ? staticDir(Object.fromEntries(disks.map((b) => [b.ctrl, staticDir({ [b.name]: s.diskDir(b) })]))) : undefined;
    },
    net: (d, k, s) => {
      const nds = k.net.of(d);
      return nds.length ? staticDir(Object.fromEntries(nds.map((n) => [n.name, s.netDevDir(d, n.name)]))) : undefined;
    },
    // drivers/ptp ptp_clock_register: the PHC's class device ptp<N> (its attributes are not modelled)
    ptp: (d) => (d.ptpIndex !== null ? staticDir({ [`ptp${d.ptpIndex}`]: staticDir({}) }) : undefined),
    "vfio-dev": (d, k, s) => {
      if (!k.profile.behaviour.vfioDeviceSysfs) return undefined;
      const vds = k.vfio.devicesOf(d);
      // by name, not an object keyed vfio<N> (a property name of its own for each device)
      return vds.length
        ? lazyDir(
            () => vds.map((v) => `vfio${v.index}`),
            (name) => {
              const v = vds.find((x) => `vfio${x.index}` === name);
              return v && s.vfioDevDir(d, v.index);
            },
          )
        : undefined;
    },
  };

  /** The names in device `d`'s directory before its virtfn links and child devices, in readdir's order. */
  private deviceEntryNames(d: PciDev): string[] {
    const e = SysfsTrees.DEVICE_ENTRIES;
    return [...this.pciEntries.names(d, this.k), ...Object.keys(e).filter((n) => e[n]!(d, this.k, this) !== undefined)];
  }

  /** The node of entry `name` of device `d`'s directory (not a virtfn link or a child device). */
  private deviceEntry(d: PciDev, name: string): Node | undefined {
    const e = SysfsTrees.DEVICE_ENTRIES;
    return this.pciEntries.entry(name, d, this.k) ?? (Object.hasOwn(e, name) ? e[name]!(d, this.k, this) : undefined);
  }

  /**
   * drivers/base/power/sysfs.c: power/ of a device. Runtime PM (CONFIG_PM, every modelled
   * build): control ("on" — pci_pm_init forbids — until a driver allows it: vfio-pci, "auto"),
   * runtime_status ("suspended" when allowed and nobody holds it: not enabled, no VFs — vfio-pci
   * keeps a PF with VFs active), autosuspend_delay_ms (EIO: PCI devices do not use autosuspend);
   * runtime_usage, runtime_active_kids, runtime_enabled with PM_ADVANCED_DEBUG; async with
   * PM_SLEEP; wakeup* of a wakeup-capable device with PM_SLEEP.
   */
  private powerDir(d: PciDev): DirNode {
    const k = this.k;
    const c = k.profile.config;
    const suspended = () => d.runtimePmAllowed && d.enableCnt === 0 && d.numVFs === 0;
    const zero = () => ro(() => "0\n");
    const e: Record<string, Node> = {
      ...(c.PM_SLEEP ? { async: rw(() => "enabled\n", (_t, _b, n) => n) } : {}),
      autosuspend_delay_ms: rw(
        () => {
          throw new SysErrorCode(ERRNO.EIO);
        },
        () => -ERRNO.EIO,
      ),
      control: rw(
        () => (d.runtimePmAllowed ? "auto\n" : "on\n"),
        (_t, b, n) => {
          const v = b.subarray(0, n).toString("latin1").replace(/\n$/, "");
          if (v === "auto") d.runtimePmAllowed = true;
          else if (v === "on") d.runtimePmAllowed = false;
          else return -ERRNO.EINVAL;
          return n;
        },
      ),
      ...(c.PM_ADVANCED_DEBUG ? { runtime_active_kids: zero() } : {}),
      runtime_active_time: zero(),
      ...(c.PM_ADVANCED_DEBUG ? { runtime_enabled: ro(() => (d.runtimePmAllowed ? "enabled\n" : "forbidden\n")) } : {}),
      runtime_status: ro(() => (suspended() ? "suspended\n" : "active\n")),
      runtime_suspended_time: zero(),
      ...(c.PM_ADVANCED_DEBUG ? { runtime_usage: ro(() => (d.runtimePmAllowed ? "0\n" : "1\n")) } : {}),
    };
    if (c.PM_SLEEP && d.wakeup) {
      // wakeup_store: "enabled" / "disabled" (device_wakeup_enable / _disable), else EINVAL
      e.wakeup = rw(
        () => (d.wakeupEnabled ? "enabled\n" : "disabled\n"),
        (_t, b, n) => {
          const v = b.subarray(0, n).toString("latin1").replace(/\n$/, "");
          if (v !== "enabled" && v !== "disabled") return -ERRNO.EINVAL;
          d.wakeupEnabled = v === "enabled";
          return n;
        },
      );
      for (const w of ["wakeup_abort_count", "wakeup_active", "wakeup_active_count", "wakeup_count", "wakeup_expire_count", "wakeup_last_time_ms", "wakeup_max_time_ms", "wakeup_total_time_ms"]) e[w] = zero();
    }
    return staticDir(e);
  }

  // ---------------------------------------------------------------- vfio-dev class devices and cdev nodes

  /**
   * vfio_main.c: each vfio device is class device vfio<N> of class "vfio-dev" under its PCI
   * device; `dev` exists only with CONFIG_VFIO_DEVICE_CDEV (vfio_init_device_cdev sets devt).
   */
  private vfioDevDir(d: PciDev, index: number): DirNode {
    const k = this.k;
    const cdev = k.profile.config.VFIO_DEVICE_CDEV;
    // a lookup makes the one node it asks for (a walk to vfio<N>/dev, readlink of vfio<N>/subsystem)
    return lazyDir(
      () => (cdev ? ["dev", "device", "subsystem", "uevent"] : ["device", "subsystem", "uevent"]),
      (name) => {
        switch (name) {
          case "dev":
            return cdev ? ro(() => `${VFIO_DEV_MAJOR}:${index}\n`) : undefined;
          case "device":
            return link(`../../../${d.name}`); // as net-sysfs links it: up from net/IF to the PCI device
          case "subsystem":
            return sysLink(`${d.sysfsDir}/vfio-dev/vfio${index}`, "/sys/class/vfio-dev");
          case "uevent":
            return rw(
              () => (k.profile.config.VFIO_DEVICE_CDEV ? `MAJOR=${VFIO_DEV_MAJOR}\nMINOR=${index}\nDEVNAME=vfio/devices/vfio${index}\n` : ""),
              (_t, _b, c) => c,
            );
          default:
            return undefined;
        }
      },
    );
  }

  /** /sys/class/vfio-dev: a link per vfio device to its class device directory */
  /** net-sysfs.c: the netdev's class device under its PCI device */
  private netDevDir(d: PciDev, name: string): DirNode {
    const k = this.k;
    const base = `${d.sysfsDir}/net/${name}`;
    const master = k.net.configOf(name).master;
    return staticDir({
      ifindex: ro(() => `${k.net.get(name)?.ifindex ?? 0}\n`),
      flags: ro(() => `0x${k.net.flags(name).toString(16)}\n`),
      operstate: ro(() => `${k.net.configOf(name).up ? "up" : "down"}\n`),
      device: link(`../../../${d.name}`), // as net-sysfs links it: up from net/IF to the PCI device
      subsystem: sysLink(base, "/sys/class/net"),
      ...(master ? { master: sysLink(base, `/sys/devices/virtual/net/${master}`) } : {}),
    });
  }

  /** block/genhd.c + partitions/core.c: a disk's dev, holders and partitions (a real directory, not a link, in the model) */
  private diskDir(b: BlockDisk): DirNode {
    const k = this.k;
    const part = (name: string): DirNode =>
      staticDir({ dev: ro(() => `${k.disks.devOf(b, name)}\n`), holders: lazyDir(() => k.disks.holdersOf(b, name), (h) => (k.disks.holdersOf(b, name).includes(h) ? link(`../../../${h}`) : undefined)) });
    return lazyDir(
      () => ["dev", "holders", ...k.disks.partitions(b)],
      (name) => {
        if (name === "dev") return ro(() => `${k.disks.devOf(b)}\n`);
        if (name === "holders") return lazyDir(() => k.disks.holdersOf(b, b.name), (h) => (k.disks.holdersOf(b, b.name).includes(h) ? link(`../../${h}`) : undefined));
        return k.disks.partitions(b).includes(name) ? part(name) : undefined;
      },
    );
  }

  /** /sys/class/net: a link per netdev to its class device directory */
  private netClass(): DirNode {
    const k = this.k;
    return lazyDir(
      () => k.net.devices().map((n) => n.name),
      (name) => {
        const n = k.net.get(name);
        return n ? sysLink("/sys/class/net", `${n.dev.sysfsDir}/net/${name}`) : undefined;
      },
    );
  }

  private vfioDevClass(): DirNode {
    const k = this.k;
    const live = () => [...k.vfio.devices.values()].filter((v) => v.deviceAdded);
    return lazyDir(
      () => live().map((v) => `vfio${v.index}`),
      (name) => {
        // by index: a lookup does not go through every vfio device
        const m = /^vfio(0|[1-9]\d*)$/.exec(name);
        const v = m ? k.vfio.devices.get(Number(m[1])) : undefined;
        return v && v.deviceAdded ? sysLink("/sys/class/vfio-dev", `${v.pdev.sysfsDir}/vfio-dev/vfio${v.index}`) : undefined;
      },
    );
  }

  private cdevNodes(): number[] {
    const k = this.k;
    if (!k.profile.config.VFIO_DEVICE_CDEV) return [];
    return [...k.vfio.devices.keys()].filter((i) => k.vfio.cdevNode(i)).sort((a, b) => a - b);
  }

  /** /dev/vfio/devices: vfio_device_devnode "vfio/devices/vfio<N>", mode 0600 (no mode given) */
  private cdevDir(): DirNode {
    const k = this.k;
    return lazyDir(
      () => this.cdevNodes().map((i) => `vfio${i}`),
      (name) => {
        const m = /^vfio(0|[1-9]\d*)$/.exec(name);
        if (!m || !k.vfio.cdevNode(Number(m[1]))) return undefined;
        return { t: "char", mode: 0o600, rdev: makedev(VFIO_DEV_MAJOR, Number(m[1])), open: (_t, flags) => k.vfio.openCdev(Number(m[1]), flags) };
      },
    );
  }

  // ---------------------------------------------------------------- /sys/kernel/iommu_groups

  private iommuGroups(): DirNode {
    const k = this.k;
    return lazyDir(
      () => [...k.iommu.groups.keys()].sort((a, b) => a - b).map(String),
      (name) => {
        const g = k.iommu.groups.get(Number(name));
        if (!g || !/^\d+$/.test(name)) return undefined;
        const base = `/sys/kernel/iommu_groups/${g.id}/devices`;
        return staticDir({
          type: ro(() => "DMA\n"),
          devices: lazyDir(
            () => g.devices.map((d) => d.name),
            (n) => {
              const d = g.devices.find((x) => x.name === n);
              return d ? sysLink(base, d.sysfsDir) : undefined;
            },
          ),
        });
      },
    );
  }

  // ---------------------------------------------------------------- /sys/module

  private modules(): DirNode {
    const k = this.k;
    const p = k.vfioPci.params;
    const bool = (get: () => boolean, set: ((v: boolean) => void) | null) =>
      set
        ? rw(
            () => (get() ? "Y\n" : "N\n"),
            (_t, b, c) => {
              // kernel/params.c param_set_bool → kstrtobool
              const v = kstrtobool(str(b, c));
              if (v === null) return -ERRNO.EINVAL;
              set(v);
              return c;
            },
          )
        : ro(() => (get() ? "Y\n" : "N\n"));
    const mods: Record<string, Node> = {};
    for (const drv of k.drivers.drivers) mods[drv.module] = staticDir({ drivers: staticDir({ [`pci:${drv.name}`]: sysLink(`/sys/module/${drv.module}/drivers`, `/sys/bus/pci/drivers/${drv.name}`) }) });
    mods.vfio_pci = staticDir({
      parameters: staticDir({
        enable_sriov: bool(() => p.enable_sriov, (v) => (p.enable_sriov = v)),
        disable_idle_d3: bool(() => p.disable_idle_d3, (v) => (p.disable_idle_d3 = v)),
        nointxmask: bool(() => p.nointxmask, (v) => (p.nointxmask = v)),
        disable_vga: bool(() => p.disable_vga, null),
        disable_denylist: bool(() => p.disable_denylist, null),
      }),
      drivers: staticDir({ "pci:vfio-pci": link("../../../bus/pci/drivers/vfio-pci") }),
    });
    mods.vfio = staticDir({ parameters: staticDir({}) });
    mods.vfio_iommu_type1 = staticDir({ parameters: staticDir({}) });
    // Debian's and Ubuntu's kernels build AppArmor in and enable it at boot (the lab's Debian
    // guests read Y here); an upstream build such as the lab's own tinyconfig kernels has none
    const distro = k.profile.ident.distro;
    if (distro === "debian" || distro === "ubuntu") mods.apparmor = staticDir({ parameters: staticDir({ enabled: ro(() => "Y\n") }) });
    return staticDir(mods);
  }
}

/**
 * The PF's virtfn<N> links (iov.c pci_iov_sysfs_link), looked up by index: building all of them
 * on every lookup in the PF's directory made reading N links cost O(N²).
 */
function virtfnNames(d: PciDev): string[] {
  const out: string[] = [];
  d.sriov?.vfs.forEach((vf, i) => {
    if (vf && vf.present) out.push(`virtfn${i}`);
  });
  return out;
}

function virtfnLink(d: PciDev, name: string): Node | undefined {
  const m = /^virtfn(0|[1-9][0-9]*)$/.exec(name);
  const vf = m ? d.sriov?.vfs[Number(m[1])] : undefined;
  return vf && vf.present ? sysLink(d.sysfsDir, vf.sysfsDir) : undefined;
}

/**
 * Each folder from /sys/devices down to a device's directory `dir` (/sys/devices/pci0000:00/…/BDF)
 * with the name in it that leads to `dir`: ("/sys/devices", "pci0000:00"), …, (parent, "BDF").
 */
function forEachParent(dir: string, fn: (parent: string, name: string) => void): void {
  // the model's own paths: absolute, no empty name; the first folder is the second name's
  let end = dir.indexOf("/", dir.indexOf("/", 1) + 1);
  while (end > 0) {
    const next = dir.indexOf("/", end + 1);
    fn(dir.slice(0, end), next < 0 ? dir.slice(end + 1) : dir.slice(end + 1, next));
    end = next;
  }
}

/** An open sysfs attribute: show() runs at the first read (seq_file), store() per write. */
export class SysfsFile implements OpenFile {
  refs = 0;
  private buf: Buffer | null = null;
  private pos = 0;
  constructor(
    readonly procLink: string,
    public flags: number,
    private readonly node: { show?: (task: Task) => string | Promise<string>; store?: (task: Task, buf: Buffer, count: number) => number | Promise<number>; wouldBlock?: () => boolean },
  ) {}

  /** True when a read now answers at once: the attribute says its show() would not wait (AttrNode.wouldBlock). */
  readsNow(): boolean {
    return this.node.wouldBlock?.() === false;
  }

  async read(task: Task, len: number): Promise<Buffer> {
    if (this.buf === null) this.buf = Buffer.from(await this.show(task), "latin1");
    const out = this.buf.subarray(this.pos, this.pos + len);
    this.pos += out.length;
    return Buffer.from(out);
  }

  private show(task: Task): string | Promise<string> {
    if (!this.node.show) throw new SysErrorCode(ERRNO.EIO);
    return this.node.show(task);
  }

  /**
   * What reads of a just-opened file return from its start to EOF, as one buffer: the bytes of
   * one show(). That is also readToEnd's answer in either mode (src/sys/fsutil.ts: its first read
   * asks for CHUNK bytes, more than a page, so a first read shorter than a page is the whole
   * file). Answered without a Promise when show() answers at once; throws (or rejects with)
   * show()'s SysErrorCode, as read() does.
   */
  contents(task: Task): Buffer | Promise<Buffer> {
    const s = this.show(task);
    if (typeof s === "string") return Buffer.from(s, "latin1");
    return s.then((v) => Buffer.from(v, "latin1"));
  }

  /** kernfs_fop_write_iter + sysfs_kf_write: at most PAGE_SIZE bytes, empty writes return 0. */
  async write(task: Task, data: Buffer): Promise<number> {
    if (data.length > 4096) throw new SysErrorCode(ERRNO.E2BIG);
    if (data.length === 0) return 0;
    const r = await this.node.store!(task, data, data.length);
    if (r < 0) throw new SysErrorCode(-r);
    return r;
  }

  lseek(offset: number, whence: number): number {
    if (whence === 0) {
      this.pos = offset;
      if (offset === 0) this.buf = null;
    }
    return this.pos;
  }
}

/** /dev/kmsg: one record per read, EAGAIN at the end with O_NONBLOCK, SEEK_END skips history. */
export class KmsgFile implements OpenFile {
  readonly procLink = "/dev/kmsg";
  refs = 0;
  private cursor: number;
  constructor(
    private readonly k: Kernel,
    public flags: number,
  ) {
    this.cursor = k.log.records[0]?.seq ?? k.log.nextSeq;
  }
  async read(_task: Task, len: number): Promise<Buffer> {
    for (;;) {
      const recs = this.k.log.since(this.cursor);
      const r = recs[0];
      if (r) {
        const line = Buffer.from(KernelLog.kmsgLine(r), "utf8");
        if (len < line.length) throw new SysErrorCode(ERRNO.EINVAL);
        this.cursor = r.seq + 1;
        return line;
      }
      if (this.flags & O_NONBLOCK) throw new SysErrorCode(ERRNO.EAGAIN);
      await this.k.log.whenNew();
    }
  }
  async write(_task: Task, data: Buffer): Promise<number> {
    this.k.log.printk(4, data.toString("utf8").replace(/\n$/, ""));
    return data.length;
  }
  lseek(offset: number, whence: number): number {
    if (offset !== 0) throw new SysErrorCode(ERRNO.ESPIPE);
    if (whence === 0) this.cursor = this.k.log.records[0]?.seq ?? this.k.log.nextSeq;
    else if (whence === 2) this.cursor = this.k.log.nextSeq;
    else throw new SysErrorCode(ERRNO.EINVAL);
    return 0;
  }
}
