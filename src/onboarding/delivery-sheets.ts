import { displaySerial } from '../ca/serial.js';
import fs from 'node:fs';
import PDFDocument from 'pdfkit';
import { Refusal } from '../errors.js';

/**
 * The paper that travels with a certificate: per certificate one A4 delivery sheet (who it is for,
 * its serial and expiry as the browser shows them, how to import it on Windows, macOS and in
 * Firefox, where to connect) and one password slip (the .p12 password, and the initial login of
 * users created for the clinic), on separate pages so that sheet and password go by separate ways.
 * Written with pdfkit and the Japanese font of Debian's fonts-noto-cjk.
 */

export const DEFAULT_FONT = '/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc';
const FONT_NAME = 'NotoSansCJKjp-Regular';

export interface Sheet {
  tenantCode: string;
  tenantName: string;
  institutionNumber: string;
  institutionName: string;
  label: string | undefined;
  serial: string;
  notAfter: Date;
  p12File: string;
  /** Undefined when it was already handed over by an earlier run (its slip then says so). */
  password: string | undefined;
  users: { loginId: string; role: 'admin' | 'user'; password: string | undefined }[];
}

/** A date as the clinic reads it: Japan time, YYYY年MM月DD日. */
export function jstDay(d: Date): string {
  const j = new Date(d.getTime() + 9 * 3600_000);
  return `${j.getUTCFullYear()}年${String(j.getUTCMonth() + 1).padStart(2, '0')}月${String(j.getUTCDate()).padStart(2, '0')}日`;
}

/** The sheets' fixed wording (also measured ahead, see writeDeliverySheets). */
const WORDING = {
  deliveryTitle: '電子証明書 送付票',
  deliverySubtitle: '特定健診クラウド　クライアント証明書',
  importHeading: '証明書のインポート手順',
  afterImport: 'インポート後、ブラウザをすべて閉じてから起動し、接続先を開いて証明書を選び、ログインしてください。',
  passwordApart: 'パスワードは別紙「パスワード通知書」でお届けします。この用紙と一緒に保管しないでください。',
  slipTitle: 'パスワード通知書',
  p12Password: '証明書ファイルのパスワード',
  alreadyNotified: '以前に出力した通知書でお知らせ済みです（再出力できません）。',
  loginHeading: 'ログイン情報（初回ログイン後にパスワードを変更してください）',
  slipApart: 'この通知書は送付票とは別にお届けしています。パスワードを他人に知らせないでください。',
};

const STEPS: [string, string[]][] = [
  [
    'Windows（Edge・Chrome）',
    [
      '証明書ファイル（.p12）をダブルクリックします。「証明書のインポート ウィザード」が開きます。',
      '保存場所は「現在のユーザー」のまま「次へ」を押します。',
      'パスワード欄に、別紙「パスワード通知書」のパスワードを入力して「次へ」を押します。',
      '「証明書の種類に基づいて、自動的に証明書ストアを選択する」のまま「次へ」、「完了」を押します。',
    ],
  ],
  [
    'macOS（Safari・Chrome）',
    [
      '証明書ファイル（.p12）をダブルクリックします。「キーチェーンアクセス」が開きます。',
      'キーチェーンは「ログイン」を選び「追加」を押します。',
      '別紙のパスワードを入力して「OK」を押します。',
    ],
  ],
  [
    'Firefox',
    [
      'Firefox は独自の証明書ストアを使います。ダブルクリックではなく、Firefox に取り込みます。',
      '設定 → プライバシーとセキュリティ → 証明書 →「証明書を表示...」を開きます。',
      '「あなたの証明書」タブで「インポート...」を押し、証明書ファイル（.p12）を選びます。',
      '別紙のパスワードを入力して「OK」を押します。',
    ],
  ],
];

function checkFont(font: string): void {
  if (!fs.existsSync(font)) {
    throw new Refusal('invalid_input', `the Japanese font ${font} is missing: install Debian's fonts-noto-cjk (apt-get install fonts-noto-cjk) or set KENSHIN_PDF_FONT`, { field: 'KENSHIN_PDF_FONT' });
  }
}

/** Writes the PDF to `file` (via a temp file and a rename: never half a PDF under the final name). */
export async function writeDeliverySheets(file: string, sheets: Sheet[], opts: { portalUrl: string; operatorContact: string | undefined; font?: string; beforeRename?: () => Promise<void> }): Promise<{ pages: number }> {
  const font = opts.font ?? DEFAULT_FONT;
  checkFont(font);
  const doc = new PDFDocument({ size: 'A4', margin: 56, autoFirstPage: false, info: { Title: '電子証明書 送付票', Producer: 'Kenshin Cloud' } });
  // The font (19 MB) read without blocking and parsed (≈ 40 ms); then the glyphs of the sheets'
  // fixed wording measured a line at a time, each with a turn of the event loop: the first sheet
  // otherwise loaded them all in one stretch (≈ 110 ms, ≈ 190 ms with the parse).
  doc.registerFont('jp', await fs.promises.readFile(font), FONT_NAME);
  doc.font('jp');
  for (const line of [...STEPS.flatMap(([platform, steps]) => [platform, ...steps]), ...Object.values(WORDING)]) {
    await new Promise<void>((resolve) => setImmediate(resolve));
    doc.fontSize(10).widthOfString(line);
  }
  const tmp = `${file}.${process.pid}.tmp`;
  const out = fs.createWriteStream(tmp, { mode: 0o600 });
  const done = new Promise<void>((resolve, reject) => {
    out.on('finish', resolve);
    out.on('error', reject);
  });
  doc.pipe(out);
  let pages = 0;
  const field = (name: string, value: string) => {
    doc.font('jp').fontSize(10).fillColor('#555').text(name, { continued: false });
    doc.fontSize(13).fillColor('#000').text(value).moveDown(0.4);
  };
  for (const s of sheets) {
    // pdfkit lays out synchronously (2,000 pages ≈ 3–5 s): a turn of the event loop after every
    // sheet (its two pages, ≈ 3 ms) keeps the server answering the clinics and the console job's
    // heartbeat going. Every 25 sheets had held each request up to 160 ms; what is left is once per
    // file: the font's first use (≈ 90 ms) and pdfkit's end (the font subset, ≈ 60 ms).
    if (pages > 0) await new Promise<void>((resolve) => setImmediate(resolve));
    // The delivery sheet.
    doc.addPage();
    pages++;
    doc.font('jp').fontSize(20).text(WORDING.deliveryTitle, { align: 'center' }).moveDown(0.3);
    doc.fontSize(10).fillColor('#555').text(WORDING.deliverySubtitle, { align: 'center' }).fillColor('#000').moveDown(1);
    field('契約者', `${s.tenantName}（${s.tenantCode}）`);
    field('健診機関', `${s.institutionNumber}\u3000${s.institutionName}`);
    if (s.label) field('端末', s.label);
    field('証明書のシリアル番号（ブラウザの証明書一覧と同じ表記）', displaySerial(s.serial));
    field('有効期限', `${jstDay(s.notAfter)}（期限の 90 日前から、ログイン時に更新できます）`);
    field('証明書ファイル', s.p12File);
    field('接続先', opts.portalUrl);
    doc.moveDown(0.5).fontSize(14).text(WORDING.importHeading).moveDown(0.3);
    for (const [platform, steps] of STEPS) {
      doc.fontSize(11.5).text(platform).moveDown(0.1);
      steps.forEach((step, i) => doc.fontSize(10).text(`${i + 1}. ${step}`, { indent: 12 }));
      doc.moveDown(0.4);
    }
    doc.fontSize(10).text(WORDING.afterImport);
    doc.text(WORDING.passwordApart);
    if (opts.operatorContact) doc.moveDown(0.5).text(`お問い合わせ: ${opts.operatorContact}`);

    // The password slip.
    doc.addPage();
    pages++;
    doc.font('jp').fontSize(20).text(WORDING.slipTitle, { align: 'center' }).moveDown(1);
    field('契約者', `${s.tenantName}（${s.tenantCode}）`);
    field('健診機関', `${s.institutionNumber}\u3000${s.institutionName}${s.label ? `\u3000端末: ${s.label}` : ''}`);
    field('証明書のシリアル番号', displaySerial(s.serial));
    field('証明書ファイル', s.p12File);
    doc.fontSize(10).fillColor('#555').text(WORDING.p12Password);
    if (s.password) doc.fontSize(18).fillColor('#000').text(s.password, { characterSpacing: 1 });
    else doc.fontSize(12).fillColor('#000').text(WORDING.alreadyNotified);
    doc.moveDown(0.8);
    const created = s.users.filter((u) => u.password !== undefined);
    if (created.length) {
      doc.fontSize(12).text(WORDING.loginHeading).moveDown(0.3);
      for (const u of created) doc.fontSize(11).text(`ログインID: ${u.loginId}\u3000権限: ${u.role === 'admin' ? '管理者' : '一般ユーザ'}\u3000初期パスワード: ${u.password}`);
      doc.moveDown(0.5);
    }
    doc.fontSize(10).text(WORDING.slipApart);
  }
  doc.end();
  await done;
  try {
    // A run that may no longer deliver (onboard's claim) leaves no PDF behind, not even its temp file.
    await opts.beforeRename?.();
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fs.renameSync(tmp, file);
  return { pages };
}
