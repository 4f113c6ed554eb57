// Layout of the memory the fuzz worker shares with its watchdog: Int32 [heartbeat, target index,
// input length, exec seed], then the bytes of the input being run (cut at the capacity).
export const HEADER_INTS = 4;
export const INPUT_CAPACITY = 64 * 1024;
export const SAB_BYTES = HEADER_INTS * 4 + INPUT_CAPACITY;
