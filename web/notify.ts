/// <reference lib="dom" />
/**
 * The desktop notification of a mention while the tab is hidden, if the person allowed it; the
 * choice is remembered in local storage.
 */
import { keepLocally, keptLocally } from "./stored.ts";

/** Where the choice to be notified is remembered: `"on"` or `"off"` (off until you allow it). */
export const NOTIFY_STORE = "chat.notify";

/** The choice to be notified of mentions, remembered in local storage. */
export function isNotifyOn(): boolean {
  return keptLocally(NOTIFY_STORE) === "on"; // storage refused: nothing was allowed
}

/**
 * Ties the checkbox to the remembered choice; ticking it asks the browser's permission, and a
 * refusal unticks it again, so the box never claims what the browser will not do.
 */
export function bindNotifySetting(box: HTMLInputElement): void {
  box.checked = isNotifyOn() && "Notification" in globalThis &&
    Notification.permission === "granted";
  box.addEventListener("change", async () => {
    let isOn = box.checked;
    if (isOn && "Notification" in globalThis) {
      isOn = (await Notification.requestPermission()) === "granted";
    } else if (isOn) {
      isOn = false; // this browser has no notifications
    }
    box.checked = isOn;
    keepLocally(NOTIFY_STORE, isOn ? "on" : "off");
  });
}

/**
 * A desktop notification of a mention (or a private message), when the tab is hidden and the
 * person allowed it.
 */
export function notifyMention(from: string, text: string, isPrivate = false): void {
  if (!document.hidden || !isNotifyOn()) return;
  if (!("Notification" in globalThis) || Notification.permission !== "granted") return;
  // One tag: a burst of mentions replaces the last notification rather than piling up.
  const notification = new Notification(
    isPrivate ? `${from}, privately` : `${from} mentioned you`,
    {
      body: text,
      tag: "chat-mention",
    },
  );
  notification.onclick = () => {
    globalThis.focus();
    notification.close();
  };
}
