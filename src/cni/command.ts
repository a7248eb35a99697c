// The CNI verbs weir answers (spec 1.1.0 section 2, "CNI operations").

export const CNI_COMMANDS = ['ADD', 'DEL', 'CHECK', 'STATUS', 'GC', 'VERSION'] as const;
export type CniCommand = (typeof CNI_COMMANDS)[number];

export const isCniCommand = (s: string): s is CniCommand => (CNI_COMMANDS as readonly string[]).includes(s);
