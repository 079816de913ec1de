// The reader's settings kept in this browser (the token, the last sender name). Storage may be
// refused (private mode); then a setting lasts for this page only.
export const TOKEN_KEY = "relay.token";
export const SENDER_KEY = "relay.sender";

export function readStorage(key) {
  try {
    return window.localStorage.getItem(key);
  } catch (e) {
    return null;
  }
}

export function writeStorage(key, value) {
  try {
    if (value === null) window.localStorage.removeItem(key);
    else window.localStorage.setItem(key, value);
  } catch (e) {
    /* private mode: the setting lasts for this page only */
  }
}
