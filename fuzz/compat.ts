// Makes jazzer.js's prebuilt libFuzzer addon load on an older Linux (Debian 12: glibc 2.36,
// libstdc++ 12). The addon is built against glibc 2.38 and libstdc++ 13 but needs only
// three symbols from them: `__isoc23_strtol`/`__isoc23_strtoul` (C23 strtol) and
// `std::ios_base_library_init`. A small shim library provides those (LD_PRELOAD), and the
// addon's requirements on the two newer symbol versions are marked weak (VER_FLG_WEAK,
// which the loader reports instead of refusing). Nothing is done where the addon loads.

import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const BUILD = join(HERE, '.build');
export const SHIM = join(BUILD, 'libjazzer-compat.so');

const SHIM_SOURCE = `
#include <cstdlib>
#include <ios>
extern "C" long __isoc23_strtol(const char* s, char** e, int b) { return std::strtol(s, e, b); }
extern "C" unsigned long __isoc23_strtoul(const char* s, char** e, int b) { return std::strtoul(s, e, b); }
namespace std { void ios_base_library_init() {} }
// libstdc++ 13 initializes the standard streams itself; with 12, someone must.
static std::ios_base::Init streams;
`;

function addonPath(): string {
  const require = createRequire(import.meta.url);
  const pkg = dirname(require.resolve('@jazzer.js/fuzzer/package.json'));
  return join(pkg, 'prebuilds', `fuzzer-${process.platform}-${process.arch}.node`);
}

/**
 * The loader's complaint when the addon is loaded in a fresh process, or '' when it loads.
 * LD_BIND_NOW: a missing symbol must show now, not when libFuzzer first calls it.
 */
function loadError(addon: string, env: NodeJS.ProcessEnv): string {
  const r = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(addon)})`], { env: { ...env, LD_BIND_NOW: '1' }, encoding: 'utf8' });
  return r.status === 0 ? '' : r.stderr;
}

/** Sets VER_FLG_WEAK on the addon's requirement of `version` (ELF64 little-endian, .gnu.version_r). */
function weakenVersion(elf: Buffer, version: string): boolean {
  const shoff = Number(elf.readBigUInt64LE(0x28));
  const shentsize = elf.readUInt16LE(0x3a);
  const shnum = elf.readUInt16LE(0x3c);
  const section = (i: number) => {
    const at = shoff + i * shentsize;
    return { type: elf.readUInt32LE(at + 4), offset: Number(elf.readBigUInt64LE(at + 0x18)), link: elf.readUInt32LE(at + 0x28) };
  };
  let changed = false;
  for (let i = 0; i < shnum; i++) {
    const s = section(i);
    if (s.type !== 0x6ffffffe) continue; // SHT_GNU_verneed
    const strtab = section(s.link).offset;
    const name = (off: number): string => elf.toString('latin1', strtab + off, elf.indexOf(0, strtab + off));
    for (let vn = s.offset; ; ) {
      const cnt = elf.readUInt16LE(vn + 2);
      for (let k = 0, aux = vn + elf.readUInt32LE(vn + 8); k < cnt; k++) {
        if (name(elf.readUInt32LE(aux + 8)) === version) {
          elf.writeUInt16LE(elf.readUInt16LE(aux + 4) | 0x2, aux + 4);
          changed = true;
        }
        const next = elf.readUInt32LE(aux + 12);
        if (next === 0) break;
        aux += next;
      }
      const next = elf.readUInt32LE(vn + 12);
      if (next === 0) break;
      vn += next;
    }
  }
  return changed;
}

/** Returns the environment the fuzzer must run with (LD_PRELOAD of the shim when needed). */
export function fuzzerEnv(): NodeJS.ProcessEnv {
  const addon = addonPath();
  const plain = loadError(addon, process.env);
  if (plain === '') return process.env;
  if (!/version `[^']+' not found|undefined symbol/.test(plain)) throw new Error(`the jazzer.js addon does not load:\n${plain}`);
  mkdirSync(BUILD, { recursive: true });
  if (!existsSync(SHIM)) {
    writeFileSync(join(BUILD, 'compat.cc'), SHIM_SOURCE);
    execFileSync('g++', ['-shared', '-fPIC', '-O2', '-o', SHIM, join(BUILD, 'compat.cc')], { stdio: 'inherit' });
  }
  const env = { ...process.env, LD_PRELOAD: [SHIM, process.env['LD_PRELOAD']].filter(Boolean).join(':') };
  if (!existsSync(`${addon}.orig`)) copyFileSync(addon, `${addon}.orig`);
  const elf = readFileSync(addon);
  for (let round = 0; round < 8; round++) {
    const err = loadError(addon, env);
    if (err === '') return env;
    const missing = /version `([^']+)' not found/.exec(err)?.[1];
    if (missing === undefined || !weakenVersion(elf, missing)) throw new Error(`the jazzer.js addon does not load:\n${err}`);
    writeFileSync(addon, elf);
  }
  throw new Error('the jazzer.js addon still does not load');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const env = fuzzerEnv();
  process.stdout.write(env['LD_PRELOAD'] ? `LD_PRELOAD=${env['LD_PRELOAD']}\n` : 'the addon loads as shipped\n');
}
