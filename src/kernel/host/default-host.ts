/**
 * The built-in simulated host: what `vfioctl --sim` runs on when no host file is given.
 * - 0000:01:00.0 Intel 82576 (igb), 8 VFs at offset 128 stride 2, VF 8086:10ca — as in the lab;
 * - 0000:3b:00.0 Intel E810 (ice), 128 VFs at offset 256 stride 1: VFs land on bus 3c;
 * - 0000:af:00.0 Intel ACC100 baseband owned by a userspace PF driver through vfio-pci, 2 VFs;
 * - 0000:05:00.0 an NVMe drive without SR-IOV;
 * - 0000:06:00.0 an Amazon PF that pci-pf-stub claims (its built-in id);
 * - 0000:3d:00.0 an Intel QAT C62x on vfio-pci's denylist.
 * The E810's interface (eth1) is the host's own network: up, with an address and the default
 * route, so taking 0000:3b:00.0 from ice is refused unless --force (the igb PF's eth0 is down).
 */
import type { HostDesc } from "./host-file.js";

export const DEFAULT_HOST: HostDesc = {
  name: "default",
  modules: { vfio_pci: { enable_sriov: true } },
  net: { eth1: { up: true, addresses: ["192.168.122.10/24", "fe80::5054:ff:fe12:3456/64"], routes: ["default via 192.168.122.1", "192.168.122.0/24"] } },
  devices: [
    {
      bdf: "0000:01:00.0",
      vendor: 0x8086,
      device: 0x10c9,
      class: 0x020000,
      numa_node: 0,
      label: "Intel 82576 Gigabit Network Connection",
      bars: [0x20000, 0, 0x400000, 0x4000, 0, 0],
      sriov: { total_vfs: 8, offset: 128, stride: 2, vf_device: 0x10ca },
    },
    {
      bdf: "0000:05:00.0",
      vendor: 0x144d,
      device: 0xa808,
      class: 0x010802,
      numa_node: 0,
      label: "Samsung NVMe SSD Controller SM981/PM981",
      bars: [0x4000, 0, 0, 0, 0, 0],
    },
    {
      bdf: "0000:06:00.0",
      vendor: 0x1d0f,
      device: 0x0053,
      class: 0x020000,
      numa_node: 0,
      label: "Amazon PF (pci-pf-stub)",
      sriov: { total_vfs: 4, offset: 1, stride: 1, vf_device: 0x0054 },
    },
    {
      bdf: "0000:3b:00.0",
      vendor: 0x8086,
      device: 0x159b,
      class: 0x020000,
      numa_node: 1,
      label: "Intel E810-XXV for SFP",
      bars: [0x2000000, 0, 0, 0x10000, 0, 0],
      sriov: { total_vfs: 128, offset: 256, stride: 1, vf_device: 0x1889 },
    },
    {
      bdf: "0000:3d:00.0",
      vendor: 0x8086,
      device: 0x37c8,
      class: 0x0b4000,
      numa_node: 1,
      label: "Intel QAT C62x (vfio-pci denylist)",
      sriov: { total_vfs: 16, offset: 1, stride: 1, vf_device: 0x37c9 },
    },
    {
      bdf: "0000:af:00.0",
      vendor: 0x8086,
      device: 0x0d5c,
      class: 0x120000,
      numa_node: 1,
      label: "Intel ACC100 vRAN accelerator (userspace PF driver)",
      driver: "vfio-pci",
      sriov: { total_vfs: 16, offset: 128, stride: 1, vf_device: 0x0d5d, num_vfs: 2 },
    },
  ],
};
