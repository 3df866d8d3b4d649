import { run } from './openssl.js';

/** The slips' text: p12 file → password, and login → initial password. */
export function slips(pdf: string): { p12: Map<string, string>; logins: Map<string, string> } {
  const text = run('pdftotext', ['-layout', pdf, '-']);
  const p12 = new Map<string, string>();
  const logins = new Map<string, string>();
  for (const page of text.split('\f')) {
    if (!page.includes('パスワード通知書')) continue;
    const file = /証明書ファイル\s*\n\s*(\S+\.p12)/.exec(page)?.[1];
    const pw = /証明書ファイルのパスワード\s*\n\s*(\S+)/.exec(page)?.[1];
    if (file && pw) p12.set(file, pw);
    for (const m of page.matchAll(/ログインID: (\S+)\s+権限: \S+\s+初期パスワード: (\S+)/g)) logins.set(m[1]!, m[2]!);
  }
  return { p12, logins };
}
