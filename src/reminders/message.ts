import { formatDateJst } from '../ca/friendly-name.js';

/** Reminder mails, in Japanese: what expires when, and exactly what to do. */
export interface ReminderFacts {
  tenantName: string;
  tenantCode: string;
  serial: string;
  notAfter: Date;
  daysLeft: number;
  portalUrl: string;
}

export function reminderMail(f: ReminderFacts): { subject: string; text: string } {
  const date = formatDateJst(f.notAfter);
  return {
    subject: `【特定健診クラウド】クライアント証明書の有効期限が近づいています（残り${f.daysLeft}日・${date}まで）`,
    text: [
      `${f.tenantName} ご担当者様`,
      '',
      `特定健診クラウドに接続するためのクライアント証明書の有効期限が近づいています。`,
      '',
      `  契約先:     ${f.tenantName} (${f.tenantCode})`,
      `  シリアル番号: ${f.serial}`,
      `  有効期限:   ${date}（残り${f.daysLeft}日）`,
      '',
      '■ 更新の手順',
      `1. 現在の証明書で ${f.portalUrl} に接続し、ログインしてください。`,
      '2. 証明書更新チェック画面で「取得する」、証明書更新確認画面で「開始する」を押下してください。',
      '3. 証明書保存画面の「こちら」から新しい証明書をダウンロードし、「確認する」でパスワードを表示して控えてください。',
      '4. ダウンロードした証明書をダブルクリックしてインポートし、ブラウザを再起動してください。',
      '',
      '※ 有効期限を過ぎると自動更新はできません。期限切れ後は運用窓口による再発行が必要です。',
      '※ 新しい証明書とパスワードは、パソコンの故障に備えて外部媒体等にバックアップしてください。',
      '',
      '特定健診クラウド 運用窓口',
    ].join('\n'),
  };
}

export function escalationMail(f: ReminderFacts & { contact: string | null }): { subject: string; text: string } {
  const date = formatDateJst(f.notAfter);
  return {
    subject: `[Kenshin] 更新されずに期限切れ: ${f.tenantCode} ${f.serial}`,
    text: [
      '次のクライアント証明書が更新されないまま有効期限を過ぎました。自動更新はできないため、再発行が必要です。',
      '',
      `  契約先:     ${f.tenantName} (${f.tenantCode})`,
      `  連絡先:     ${f.contact ?? '(未登録)'}`,
      `  シリアル番号: ${f.serial}`,
      `  有効期限:   ${date}`,
      '',
      `再発行: kenshin cert issue --tenant ${f.tenantCode} --out ${f.tenantCode}.p12`,
    ].join('\n'),
  };
}
