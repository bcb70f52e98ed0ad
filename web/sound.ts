/// <reference lib="dom" />
/**
 * A short, quiet tone on a mention while the tab is not in front: an oscillator of the Web Audio
 * API, no audio file. On unless the person turns it off; the choice is remembered in local storage.
 * The checkbox carries what the page did, for anyone looking at the page: `data-audio`, the audio
 * context's state, `data-tones`, the tones started, `data-played`, those that played to their
 * end, and `data-quiet-until`, the page's `performance.now()` before which no tone starts.
 */
import { keepLocally, keptLocally } from "./stored.ts";

/** Where the choice of sound is remembered: `"off"` once turned off (on until then). */
export const SOUND_STORE = "chat.sound";
/** The tone: its pitch (Hz), its loudness (0 to 1: quiet), its length (s). */
const PITCH = 880;
const VOLUME = 0.08;
const LENGTH = 0.15;
/**
 * The least time between two tones (ms): a burst or a flood of mentions sounds once, not once each
 * (tones started together would also add up their loudness).
 */
const GAP_MS = 2000;

let context: AudioContext | undefined;
/** When the last tone started, on the page's monotonic clock. */
let lastToneAt = -Infinity;

/** Ties the checkbox to the remembered choice, on unless it was turned off. */
export function bindSoundSetting(box: HTMLInputElement): void {
  box.checked = keptLocally(SOUND_STORE) !== "off"; // on unless turned off, or storage refused
  box.addEventListener("change", () => keepLocally(SOUND_STORE, box.checked ? "on" : "off"));
}

/** Plays the tone, if the box is ticked; where there is no audio, nothing happens. */
export function playMentionSound(box: HTMLInputElement): void {
  if (!box.checked || !("AudioContext" in globalThis)) return;
  const at = performance.now();
  if (at - lastToneAt < GAP_MS) return;
  lastToneAt = at;
  box.dataset.quietUntil = String(at + GAP_MS);
  try {
    // One context for the page's life: browsers limit how many there may be.
    const audio = context ??= new AudioContext();
    audio.onstatechange = () => {
      box.dataset.audio = audio.state;
    };
    box.dataset.audio = audio.state;
    const tone = audio.createOscillator();
    const gain = audio.createGain();
    const now = audio.currentTime;
    tone.frequency.value = PITCH;
    // In and out over a few milliseconds: a step in loudness would click.
    gain.gain.setValueAtTime(0.0001, now);
    gain.gain.exponentialRampToValueAtTime(VOLUME, now + 0.01);
    gain.gain.exponentialRampToValueAtTime(0.0001, now + LENGTH);
    tone.connect(gain).connect(audio.destination);
    tone.onended = () => {
      gain.disconnect();
      box.dataset.played = String(Number(box.dataset.played ?? "0") + 1);
    };
    box.dataset.tones = String(Number(box.dataset.tones ?? "0") + 1);
    tone.start(now);
    tone.stop(now + LENGTH + 0.01);
  } catch {
    // No audio here (none in the system, or the browser refuses it): a mention is silent.
  }
}
