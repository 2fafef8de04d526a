// The chosen language's strings for every component; the choice is kept in the browser.
import { createContext, useContext } from 'react';
import { de } from './de';
import { en, type Strings } from './en';

export const locales = { en, de } as const;
export type Locale = keyof typeof locales;

export function initialLocale(): Locale {
  const saved = localStorage.getItem('portal.locale');
  if (saved === 'en' || saved === 'de') return saved;
  return navigator.language.toLowerCase().startsWith('de') ? 'de' : 'en';
}

export const StringsContext = createContext<{ t: Strings; locale: Locale }>({ t: en, locale: 'en' });
export const useStrings = () => useContext(StringsContext);
