// Kenshin Cloud portal: the only script the pages load (CSP forbids inline script).
// Everything here is an enhancement: every form works without it.
'use strict';

document.addEventListener('DOMContentLoaded', () => {
  // Forms marked data-once: disable the button on submit (no double 「開始する」) and show progress.
  document.querySelectorAll('form[data-once]').forEach((form) => {
    form.addEventListener('submit', () => {
      const button = form.querySelector('button[type=submit]');
      if (!button) return;
      // Let this submission go through, then block any further one.
      setTimeout(() => {
        button.disabled = true;
        if (form.dataset.working) {
          button.textContent = form.dataset.working;
          button.classList.add('working');
        }
      }, 0);
    });
  });

  // The operator's delivery sheet: print it (the password slip prints on its own page).
  document.querySelectorAll('button[data-print]').forEach((button) => button.addEventListener('click', () => window.print()));

  // 「コピーする」: the clipboard API where it exists; otherwise select the text for Ctrl+C.
  document.querySelectorAll('button[data-copy]').forEach((button) => {
    button.addEventListener('click', async () => {
      const target = document.querySelector(button.dataset.copy);
      const status = document.getElementById('copy-status');
      if (!target) return;
      const text = target.textContent.trim();
      try {
        if (!navigator.clipboard || !window.isSecureContext) throw new Error('no clipboard API');
        await navigator.clipboard.writeText(text);
        if (status) status.textContent = button.dataset.copied || '';
      } catch {
        const range = document.createRange();
        range.selectNodeContents(target);
        const selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
        if (status) status.textContent = button.dataset.fallback || '';
      }
    });
  });
});
